"""Wire the cluster into the app when REDIS_URL is set; otherwise Hubbub is one node with
LocalPlacement and nothing here runs.

- Placement: rendezvous hashing over the membership view (actors/rendezvous.py), swapped
  into the actor system before anything is sent.
- Remote delivery: actors/remote.py over Redis pub/sub (storage/redis/cluster_transport.py).
- Membership: heartbeats in Redis (actors/membership.py, storage/redis/membership.py).
- On a view change: the actor system hands over the actors that moved, and this node wakes
  the actors its sockets depend on (server/cluster/rehome.py). On a death reported to this
  node: server/cluster/reaper.py.
- Shutdown: `leave` runs first on SIGTERM (Lifecycle.leave_hooks, and on_shutdown as a
  fallback): leave the view, let the moved actors finish and flush, then the gateway drains
  its sockets while the transport still carries their last messages to the new owners. The
  transport stops after the actor system (its context sits just before the system's).

Call after setup_calls (it reads the gateway's and the calls area's keys).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.membership import ClusterMembership
from actors.remote import RemoteRouter
from actors.rendezvous import RendezvousPlacement, View
from actors.system import ActorSystem
from protocols.actor_messages import MessageRegistry
from protocols.cluster import ClusterInfo
from server.actors_wiring import ACTOR_SYSTEM, actors_ctx
from server.calls.wiring import CALL_STORE
from server.cluster.reaper import NodeReaper
from server.cluster.rehome import Rehomer
from server.gateway.manager import RedisManager
from server.gateway.setup import GATEWAY, SIO
from server.keys import LIFECYCLE, SETTINGS
from server.metrics import METRICS
from server.resources import REDIS
from storage.redis.client import create_redis
from storage.redis.cluster_transport import RedisClusterTransport
from storage.redis.membership import RedisMembershipStore

log = logging.getLogger("hubbub.cluster")
# Seconds a leaving node waits for its moved actors to finish their message and flush.
HANDOVER_TIMEOUT = 10.0
# Redis connections of the cluster's own pool: heartbeats and view reads.
CLUSTER_CONNECTIONS = 8
# Seconds without a word from another node before a node alone in its view stops publishing
# its Socket.IO emits for other nodes.
QUIET_BEFORE_ALONE = 10.0


@dataclass(eq=False)
class Cluster:
    node_id: str
    system: ActorSystem
    placement: RendezvousPlacement
    router: RemoteRouter
    membership: ClusterMembership | None = None
    transport: RedisClusterTransport | None = None
    _left: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def info(self) -> ClusterInfo:
        view = self.placement.view
        return ClusterInfo(mode="cluster", node_id=self.node_id, nodes=list(view.nodes),
                           version=view.version)

    async def leave(self) -> None:
        """Leave the view and hand every local actor over (idempotent)."""
        if self._left or self.membership is None:
            return
        self._left = True
        await self.membership.leave()
        self.router.announce_view(self.membership.view.version)
        try:
            async with asyncio.timeout(HANDOVER_TIMEOUT):
                await self.system.settled()
        except TimeoutError:
            log.warning("some actors were still handing over when the node moved on")
        log.info("left the cluster", extra={"handovers": self.system.stats.handovers})

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


CLUSTER = web.AppKey("cluster", Cluster)


class ClusterCollector(Collector):
    """Reads the cluster's counters at scrape time."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        c = self._cluster
        view = c.placement.view
        yield GaugeMetricFamily("hubbub_cluster_nodes", "Live nodes in this node's view",
                                value=len(view.nodes))
        yield GaugeMetricFamily("hubbub_cluster_view_version", "Membership view version",
                                value=view.version)
        stats = c.membership.stats if c.membership is not None else None
        yield CounterMetricFamily("hubbub_cluster_view_changes", "Membership view changes",
                                  value=stats.view_changes if stats else 0)
        yield CounterMetricFamily("hubbub_cluster_dead_nodes_reaped",
                                  "Dead nodes this node cleaned up after",
                                  value=stats.dead_reaped if stats else 0)
        yield CounterMetricFamily("hubbub_cluster_handovers",
                                  "Actors handed over to another node after a view change",
                                  value=c.system.stats.handovers)
        yield CounterMetricFamily("hubbub_cluster_forwarded",
                                  "Messages passed on to an actor's new owner",
                                  value=c.system.stats.forwarded)
        sent = CounterMetricFamily("hubbub_cluster_remote_sent",
                                   "Actor messages sent to other nodes", labels=["type"])
        received = CounterMetricFamily("hubbub_cluster_remote_received",
                                       "Actor messages received from other nodes",
                                       labels=["type"])
        for kind, count in sorted(c.router.stats.sent.items()):
            sent.add_metric([kind], count)
        for kind, count in sorted(c.router.stats.received.items()):
            received.add_metric([kind], count)
        yield sent
        yield received
        yield CounterMetricFamily("hubbub_cluster_remote_undeliverable",
                                  "Sends that found their node not listening",
                                  value=c.router.stats.undeliverable)


def _alone(node_id: str, nodes: tuple[str, ...], last_heard: float | None) -> bool:
    """Whether no other node can hold a socket that an emit of this node must reach: the view
    holds only this node, and no other node has spoken to it for QUIET_BEFORE_ALONE seconds
    (a node that just started may not be in this node's view yet, but its sockets' joins and
    sends reach this node's actors before anything of theirs needs an emit from here)."""
    if nodes != (node_id,):
        return False
    return last_heard is None or time.monotonic() - last_heard > QUIET_BEFORE_ALONE


def setup_cluster(app: web.Application) -> Cluster | None:
    settings = app[SETTINGS]
    system = app[ACTOR_SYSTEM]
    node_id = settings.effective_node_id
    lifecycle = app[LIFECYCLE]
    if settings.redis_url is None:
        lifecycle.cluster_info = lambda: ClusterInfo(mode="single", node_id=node_id,
                                                     nodes=[node_id], version=0)
        return None
    placement = RendezvousPlacement(node_id)
    router = RemoteRouter(node_id, MessageRegistry(), lambda: placement.view.version)
    system.placement = placement
    system.remote = router
    cluster = Cluster(node_id=node_id, system=system, placement=placement, router=router)
    app[CLUSTER] = cluster
    lifecycle.cluster_info = cluster.info
    lifecycle.leave_hooks.append(cluster.leave)
    registry = app[METRICS].registry
    registry.register(ClusterCollector(cluster))
    latency = Histogram("hubbub_cluster_remote_ask_seconds",
                        "Round trip of asks to actors on other nodes", registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                 2.5, 5))
    router.on_ask_latency = latency.observe

    router.on_undelivered = system.undelivered

    async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
        assert settings.redis_url is not None
        # Heartbeats get a small pool of their own: they must not queue behind a burst of
        # application commands (a late heartbeat gets a live node declared dead). Actor
        # messages share the node's connection, in the same writes as its other commands.
        client = create_redis(settings.redis_url, max_connections=CLUSTER_CONNECTIONS)
        await client.ping()
        transport = RedisClusterTransport(app[REDIS], settings.redis_key_prefix, node_id)
        router.bind(transport, system)
        await transport.start(router.received)
        cluster.transport = transport
        membership = ClusterMembership(
            RedisMembershipStore(client, settings.redis_key_prefix), node_id,
            heartbeat=settings.cluster_heartbeat_seconds,
            node_timeout=settings.cluster_node_timeout_seconds)
        cluster.membership = membership
        system.refresh_view = membership.refresh
        lifecycle.adapters["cluster"] = "redis"

        async def listening() -> None:
            if not transport.listening:
                raise ConnectionError("the cluster listener is resubscribing")

        lifecycle.readiness_checks["cluster"] = listening
        try:
            yield
        finally:
            await cluster.leave()
            await membership.stop()
            router.fail_pending()
            await transport.stop()
            await client.aclose()
            for task in list(cluster._tasks):
                task.cancel()
            await asyncio.gather(*cluster._tasks, return_exceptions=True)

    async def join(app: web.Application) -> None:
        # After every context started (the gateway's and calls' ports exist), before serving.
        membership = cluster.membership
        assert membership is not None
        gateway = app[GATEWAY]
        rehomer = Rehomer(system, gateway)
        reaper = NodeReaper(system, _LazySessions(app), app[CALL_STORE])

        def view_changed(old: View, new: View) -> None:
            if placement.update(new):
                system.view_changed()
                refs = rehomer.dependents(old, new)
                if refs:
                    cluster.spawn(rehomer.wake(refs))

        async def dead(nodes: tuple[str, ...]) -> None:
            router.announce_view(membership.view.version)
            await reaper.reap(nodes)

        membership.listeners.view.append(view_changed)
        membership.listeners.dead.append(dead)
        membership.listeners.rejoined.append(rehomer.rejoined)
        gateway.live_nodes = lambda: placement.view.nodes
        manager = app[SIO].manager
        if isinstance(manager, RedisManager):
            manager.alone = lambda: _alone(node_id, placement.view.nodes, router.last_heard)
        view = await membership.join()
        router.announce_view(view.version)
        log.info("joined the cluster", extra={"version": view.version,
                                              "nodes": list(view.nodes)})

    async def leave_on_shutdown(app: web.Application) -> None:
        await cluster.leave()  # no-op when SIGTERM already did it

    # The transport must outlive the actor system (which may still send while stopping):
    # start just before it, so it is torn down just after it.
    app.cleanup_ctx.insert(app.cleanup_ctx.index(actors_ctx), cluster_ctx)
    app.on_startup.append(join)
    app.on_shutdown.insert(0, leave_on_shutdown)
    return cluster


class _LazySessions:
    """The gateway's session records, built in its context (after this module is wired)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def forget_node(self, node_id: str) -> set[str]:
        records = self._app[GATEWAY].sessions_store
        return await records.forget_node(node_id) if records is not None else set()
