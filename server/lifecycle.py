"""Process lifecycle facts shared by the ops endpoints and the shutdown path."""

from __future__ import annotations

import asyncio
import contextlib
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
    # Reported by /ready but not gating it: parts that are still coming up while the node
    # serves everything else (a Kafka consumer retrying to join its group).
    advisory_checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    # Run first on SIGTERM, before the drain period and before sockets close: the cluster
    # leaves the view and hands its actors over here.
    leave_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The cluster view for /info (None until the actor system is set up).
    cluster_info: Callable[[], ClusterInfo] | None = None
    # HTTP requests being handled right now, Socket.IO's own excepted (a websocket or a long
    # poll lasts as long as its socket): shutdown waits for these before closing connections.
    requests_in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic

    def request_started(self) -> None:
        self.requests_in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.requests_in_flight -= 1
        if self.requests_in_flight <= 0:
            self._idle.set()

    async def wait_for_requests(self, timeout: float) -> int:
        """Wait until no request is in flight, at most `timeout` seconds; returns how many
        still are."""
        if self.requests_in_flight > 0:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        return self.requests_in_flight
