"""Process lifecycle facts shared by the ops endpoints and the shutdown path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from protocols.cluster import ClusterInfo


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
    # Run first on SIGTERM, before the drain period and before sockets close: the cluster
    # leaves the view and hands its actors over here.
    leave_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The cluster view for /info (None until the actor system is set up).
    cluster_info: Callable[[], ClusterInfo] | None = None

    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic
