"""Cluster membership: this node's heartbeat and its versioned view of the live nodes.

Every `heartbeat` seconds the node announces itself through the MembershipStore (Redis in a
cluster) for `node_timeout` seconds and reads back the view. A node that stops beating drops
out of every view once its announcement expires: within node_timeout + heartbeat seconds
(3 + 1 by default, inside the 5 s the cluster promises). The store reports such dead nodes
to exactly one surviving node, which cleans up after them (`on_dead`). A graceful `leave`
removes the node at once. Any change bumps the view's version, cluster-wide.

A node's view is also re-read on demand (`refresh`): when another node mentions a newer
version, or a send found its target node gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from protocols.cluster import Beat, View

log = logging.getLogger("hubbub.cluster")
# On-demand re-reads happen at most this often (seconds).
MIN_REFRESH_INTERVAL = 0.1


class MembershipStore(Protocol):
    async def beat(self, node_id: str, timeout: float, *, first: bool = False) -> Beat:
        """Announce `node_id` alive for `timeout` seconds (from the store's clock), remove
        expired nodes and return the view. `first`: the node is joining (not a rejoin)."""
        ...

    async def leave(self, node_id: str) -> Beat:
        """Remove `node_id` now; the view no longer holds it."""
        ...


@dataclass
class MembershipStats:
    view_changes: int = 0
    beats_failed: int = 0
    dead_reaped: int = 0


ViewListener = Callable[[View, View], None]  # (old, new)
DeadListener = Callable[[tuple[str, ...]], Awaitable[None]]
RejoinListener = Callable[[], Awaitable[None]]


@dataclass
class Listeners:
    view: list[ViewListener] = field(default_factory=list)
    dead: list[DeadListener] = field(default_factory=list)
    rejoined: list[RejoinListener] = field(default_factory=list)


class ClusterMembership:
    def __init__(self, store: MembershipStore, node_id: str, *, heartbeat: float = 1.0,
                 node_timeout: float = 3.0) -> None:
        if node_timeout <= 2 * heartbeat:
            raise ValueError("the node timeout must exceed two heartbeat intervals")
        self._store = store
        self.node_id = node_id
        self._heartbeat = heartbeat
        self._timeout = node_timeout
        self._view = View(0, ())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._left = False
        self._last_read = 0.0
        self._background: set[asyncio.Task[None]] = set()
        self.listeners = Listeners()
        self.stats = MembershipStats()

    @property
    def view(self) -> View:
        return self._view

    async def join(self) -> View:
        """Announce this node and adopt the first view; then keep beating in the background."""
        beat = await self._store.beat(self.node_id, self._timeout, first=True)
        self._apply(beat)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster:beat")
        return self._view

    def refresh(self) -> None:
        """Re-read the view soon (coalesced; at most every MIN_REFRESH_INTERVAL)."""
        self._wake.set()

    async def leave(self) -> None:
        """Leave the view now (graceful shutdown); no more heartbeats."""
        if self._left:
            return
        self._left = True
        await self._stop_loop()
        try:
            self._apply(await self._store.leave(self.node_id))
        except Exception:
            log.warning("could not leave the cluster view; it expires by itself",
                        exc_info=True)

    async def stop(self) -> None:
        await self._stop_loop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _stop_loop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()
                # Woken early: do not hammer the store when many ask at once.
                await asyncio.sleep(max(0.0, self._last_read + MIN_REFRESH_INTERVAL
                                        - loop.time()))
            except TimeoutError:
                pass
            self._wake.clear()
            self._last_read = loop.time()
            try:
                beat = await self._store.beat(self.node_id, self._timeout)
            except Exception:
                # Keep the view we have: a store outage must not reshuffle every actor.
                self.stats.beats_failed += 1
                log.warning("cluster heartbeat failed", exc_info=True)
                continue
            self._apply(beat)

    def _apply(self, beat: Beat) -> None:
        old, new = self._view, beat.view
        if new.version < old.version:
            return
        self._view = new
        if new.nodes != old.nodes:
            self.stats.view_changes += 1
            log.info("cluster view changed", extra={"version": new.version,
                                                    "nodes": list(new.nodes)})
            for listener in self.listeners.view:
                try:
                    listener(old, new)
                except Exception:
                    log.exception("a cluster view listener failed")
        if beat.dead:
            self.stats.dead_reaped += len(beat.dead)
            log.warning("nodes left the cluster without leaving", extra={
                "dead": list(beat.dead)})
            for dead_listener in self.listeners.dead:
                self._spawn(dead_listener(beat.dead))
        if beat.rejoined:
            log.warning("this node had been declared dead; rejoined the cluster")
            for rejoin_listener in self.listeners.rejoined:
                self._spawn(rejoin_listener())

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("cluster membership follow-up failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
