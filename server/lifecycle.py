"""Process lifecycle facts shared by the ops endpoints and the shutdown path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Lifecycle:
    node_id: str
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    draining: bool = False  # set on shutdown; /ready then answers 503
    # adapter name per port, e.g. {"database": "postgres", "cache": "memory"}, shown by /info
    adapters: dict[str, str] = field(default_factory=dict)
    # name -> async probe raising on failure; /ready runs them all
    readiness_checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic
