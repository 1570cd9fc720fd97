"""setup_events builds the bus while the app is built, so areas can subscribe right away; the
adapter follows KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

from server.app import create_app
from server.config import load_settings
from server.events.wiring import EVENT_BUS
from server.metrics import METRICS
from storage.kafka.event_bus import KafkaEventBus
from storage.memory.event_bus import InProcessEventBus
from tests.unit.events_kit import Recorder

SECRET = {"JWT_SECRET": "x" * 32}


def test_in_process_bus_by_default_and_open_for_subscriptions() -> None:
    app = create_app(load_settings(SECRET))
    bus = app[EVENT_BUS]
    assert isinstance(bus, InProcessEventBus)
    bus.subscribe("late.area", ["hubbub.posts"], Recorder())  # nothing has started yet
    # The event metrics live on the app's registry, served at /metrics.
    assert app[METRICS].registry.get_sample_value("hubbub_outbox_relay_leader") == 0


def test_kafka_bus_when_bootstrap_servers_are_set() -> None:
    app = create_app(load_settings({**SECRET, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                    "KAFKA_TOPIC_PARTITIONS": "12"}))
    assert isinstance(app[EVENT_BUS], KafkaEventBus)  # built, not connected: no I/O yet
