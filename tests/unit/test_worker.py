"""`hubbub worker` without I/O: the CLI parses it and refuses to start without Kafka (exit 2,
one line naming KAFKA_BOOTSTRAP_SERVERS), or without the serve nodes' Postgres and Redis;
the worker's composition subscribes every area's consumer and serves no API; RUN_CONSUMERS
=false needs Kafka and leaves a serve app's bus publishing only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from server import cli
from server.app import create_app
from server.config import load_settings
from server.events.wiring import EVENT_BUS
from server.keys import ENDPOINTS
from server.startup import StartupError
from server.worker import (
    apply_consumer_role,
    check_consumer_role,
    create_health_app,
    create_worker_app,
    preflight,
)
from storage.kafka.event_bus import KafkaEventBus

KAFKA = "127.0.0.1:1"
STORES = {"DATABASE_URL": "postgresql://hubbub@127.0.0.1:1/hubbub",
          "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_SECRET": "x" * 32}
CONSUMERS = {"feed.fanout", "notifications", "analytics"}


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cli.main on a clean environment, without touching the process's logging."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)
    for variable in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "PORT",
                     "WORKER_HTTP_PORT", "RUN_CONSUMERS", "HOST", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.usefixtures("quiet_cli")
def test_worker_refuses_to_start_without_kafka(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("hubbub: configuration error: KAFKA_BOOTSTRAP_SERVERS: not set, "
                             "and `hubbub worker` needs Kafka")
    assert "in process" in err[0]


@pytest.mark.usefixtures("quiet_cli")
@pytest.mark.parametrize(("env", "variable"), [
    ({"KAFKA_BOOTSTRAP_SERVERS": "kafka"}, "KAFKA_BOOTSTRAP_SERVERS"),  # not host:port
    ({"KAFKA_BOOTSTRAP_SERVERS": KAFKA}, "DATABASE_URL"),
    ({"KAFKA_BOOTSTRAP_SERVERS": KAFKA, "DATABASE_URL": STORES["DATABASE_URL"]}, "REDIS_URL"),
    ({"RUN_CONSUMERS": "maybe"}, "RUN_CONSUMERS"),
])
def test_worker_names_the_setting_it_needs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str], variable: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["worker"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"hubbub: configuration error: {variable}"), err


@pytest.mark.usefixtures("quiet_cli")
def test_worker_http_port_in_use_is_named(taken_port: int) -> None:
    settings = load_settings({**STORES, "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
                              "WORKER_HTTP_PORT": str(taken_port)})
    with pytest.raises(StartupError) as caught:
        preflight(settings)
    assert caught.value.variable == "WORKER_HTTP_PORT"
    assert "already in use" in str(caught.value)
    # 0: no HTTP endpoint, nothing to listen on
    preflight(load_settings({**STORES, "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
                             "WORKER_HTTP_PORT": "0"}))


def test_the_cli_lists_worker(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
    assert "worker" in capsys.readouterr().out


@pytest.mark.usefixtures("quiet_cli")
def test_serve_with_run_consumers_off_needs_kafka(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_CONSUMERS", "false")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("hubbub: configuration error: RUN_CONSUMERS: false needs "
                             "KAFKA_BOOTSTRAP_SERVERS")
    check_consumer_role(load_settings({"RUN_CONSUMERS": "true"}))  # on: nothing needed


def test_the_worker_runs_every_consumer_and_serves_no_api() -> None:
    settings = load_settings({**STORES, "KAFKA_BOOTSTRAP_SERVERS": KAFKA})
    worker = create_worker_app(settings)  # builds only: nothing connects
    bus = worker[EVENT_BUS]
    assert isinstance(bus, KafkaEventBus) and set(bus.consumers) == CONSUMERS
    # The same consumers as `hubbub serve`: the groups are shared.
    served = create_app(settings)
    assert set(served[EVENT_BUS].consumers) == CONSUMERS  # type: ignore[attr-defined]
    health = create_health_app(worker)
    paths = {r.resource.canonical for r in health.router.routes() if r.resource is not None}
    assert paths == {"/health", "/ready", "/info", "/metrics"}
    assert {e.name for e in health[ENDPOINTS]} == {"ops.health", "ops.ready", "ops.info"}


def test_run_consumers_off_leaves_a_serve_app_publishing_only() -> None:
    on = create_app(load_settings({**STORES, "KAFKA_BOOTSTRAP_SERVERS": KAFKA}))
    before = on[EVENT_BUS]
    apply_consumer_role(on)
    assert on[EVENT_BUS] is before  # RUN_CONSUMERS on (the default): untouched
    off = create_app(load_settings({**STORES, "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
                                    "RUN_CONSUMERS": "false"}))
    apply_consumer_role(off)
    bus = off[EVENT_BUS]
    assert isinstance(bus, KafkaEventBus) and bus.consumers == []
    with pytest.raises(StartupError) as caught:
        apply_consumer_role(create_app(load_settings({**STORES, "RUN_CONSUMERS": "false"})))
    assert caught.value.variable == "RUN_CONSUMERS"
