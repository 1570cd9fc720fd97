"""The actor system's counters on /metrics: read from system.snapshot() at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from actors.clock import ManualClock
from actors.system import ActorSystem
from server.actors_wiring import ACTOR_SYSTEM, ActorCollector
from server.app import create_app
from server.config import load_settings
from server.metrics import METRICS
from tests.unit.actors.kit import Add, Boom, CounterActor, CounterStore


async def test_collector_exports_live_actors_depth_restarts_and_processed() -> None:
    store = CounterStore()
    system = ActorSystem(clock=ManualClock())
    system.register(CounterActor, lambda key, ctx: CounterActor(key, ctx, store))
    registry = CollectorRegistry()
    registry.register(ActorCollector(system))
    for key in ("a", "b", "c"):
        await system.ref(CounterActor, key).ask(Add(1))
    await system.ref(CounterActor, "a").tell(Boom())
    await system.settled()
    text = generate_latest(registry).decode()
    assert 'hubbub_actors_live{kind="CounterActor"} 3.0' in text
    assert 'hubbub_actor_mailbox_depth{kind="CounterActor"} 0.0' in text
    assert "hubbub_actor_restarts_total 1.0" in text
    assert "hubbub_actor_messages_processed_total 4.0" in text
    await system.stop()


def test_setup_actors_uses_the_settings_and_the_app_registry() -> None:
    app = create_app(load_settings({"JWT_SECRET": "x" * 32, "ACTOR_MAILBOX_SIZE": "7",
                                    "ACTOR_IDLE_TIMEOUT": "12.5", "NODE_ID": "node-9"}))
    system = app[ACTOR_SYSTEM]
    assert (system.mailbox_size, system.idle_timeout) == (7, 12.5)
    assert system.placement.local_node == "node-9"
    assert "hubbub_actors_live" in generate_latest(app[METRICS].registry).decode()
