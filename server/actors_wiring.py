"""Wire the actor system into the app: one ActorSystem per app under ACTOR_SYSTEM, stopped
gracefully on shutdown, with its counters exported on /metrics.

In a cluster (REDIS_URL set), server/cluster/wiring.py swaps in the cluster placement and
remote delivery before anything is sent.

`setup_actors(app)` must run before any area registers its actor kinds (they call
`app[ACTOR_SYSTEM].register(...)` in their own setup) and after the database and Redis
cleanup contexts are appended: contexts are torn down in reverse, so the system drains its
mailboxes and flushes its actors (on_stop) while the pools are still open, and after the
gateway (set up later) has closed every socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.clock import LoopClock
from actors.placement import LocalPlacement
from actors.system import ActorSystem
from server.keys import SETTINGS
from server.metrics import METRICS

log = logging.getLogger("hubbub.actors")
ACTOR_SYSTEM = web.AppKey("actor_system", ActorSystem)
# Seconds the system waits on shutdown for mailboxes to drain before cancelling.
STOP_TIMEOUT = 10.0


class ActorCollector(Collector):
    """Reads `system.snapshot()` at scrape time: nothing to keep in step on the hot path."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    def collect(self) -> Iterator[Metric]:
        snap = self._system.snapshot()
        live = GaugeMetricFamily("hubbub_actors_live", "Actors in memory, by kind",
                                 labels=["kind"])
        depth = GaugeMetricFamily("hubbub_actor_mailbox_depth",
                                  "Messages waiting in actor mailboxes, by kind",
                                  labels=["kind"])
        for kind in sorted(set(snap.live) | set(snap.mailbox_depth)):
            live.add_metric([kind], snap.live.get(kind, 0))
            depth.add_metric([kind], snap.mailbox_depth.get(kind, 0))
        yield live
        yield depth
        yield CounterMetricFamily("hubbub_actor_messages_processed",
                                  "Actor messages handled", value=snap.processed)
        yield CounterMetricFamily("hubbub_actor_restarts",
                                  "Actor crashes followed by a restart", value=snap.restarts)
        yield CounterMetricFamily("hubbub_actor_activations", "Actor activations",
                                  value=snap.activations)
        yield CounterMetricFamily("hubbub_actor_passivations", "Idle actors passivated",
                                  value=snap.passivations)


def setup_actors(app: web.Application) -> ActorSystem:
    settings = app[SETTINGS]
    system = ActorSystem(
        clock=LoopClock(),
        placement=LocalPlacement(settings.effective_node_id),
        mailbox_size=settings.actor_mailbox_size,
        idle_timeout=settings.actor_idle_timeout,
    )
    app[ACTOR_SYSTEM] = system
    app[METRICS].registry.register(ActorCollector(system))
    app.cleanup_ctx.append(actors_ctx)
    return system


async def actors_ctx(app: web.Application) -> AsyncIterator[None]:
    """Stops the actor system on shutdown: mailboxes drain, live actors flush (on_stop)."""
    yield
    system = app[ACTOR_SYSTEM]
    await system.stop(timeout=STOP_TIMEOUT)
    snap = system.snapshot()
    log.info("actor system stopped", extra={"processed": snap.processed,
                                            "restarts": snap.restarts})
