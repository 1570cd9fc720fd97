"""Startup: settings that cannot work are one line naming the variable and exit 2 (issue 9,
item 8); services that cannot be reached yet are waited for, boundedly. No I/O here (see
tests/integration/test_startup_services.py for the real thing)."""

from __future__ import annotations

import pytest

from server import cli
from server.startup import (
    StartupError,
    check_kafka_servers,
    redact,
    wait_for_service,
)


class Flaky:
    """Fails `times` times with `error`, then returns "up"."""

    def __init__(self, times: int, error: Exception) -> None:
        self.left, self.error, self.calls = times, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error
        return "up"


def _refused(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionRefusedError)


async def test_a_service_still_starting_is_waited_for() -> None:
    attempt = Flaky(2, ConnectionRefusedError(111, "refused"))
    assert await wait_for_service("REDIS_URL", "redis", attempt, retriable=_refused,
                                  wait=5) == "up"
    assert attempt.calls == 3


async def test_a_service_that_never_comes_gives_up_naming_the_variable() -> None:
    attempt = Flaky(1000, ConnectionRefusedError(111, "refused"))
    with pytest.raises(StartupError) as info:
        await wait_for_service("DATABASE_URL", "Postgres at db:5432", attempt,
                               retriable=_refused, wait=0.3)
    assert info.value.variable == "DATABASE_URL"
    assert str(info.value).startswith("DATABASE_URL: Postgres at db:5432 cannot be reached")
    assert "gave up after 0.3 s" in str(info.value)


async def test_a_setting_that_cannot_work_fails_at_once() -> None:
    attempt = Flaky(1, PermissionError(13, "password authentication failed"))
    with pytest.raises(StartupError) as info:
        await wait_for_service("DATABASE_URL", "Postgres", attempt, retriable=_refused)
    assert attempt.calls == 1 and "password authentication failed" in str(info.value)


async def test_an_unexpected_failure_is_not_dressed_up_as_a_setting() -> None:
    with pytest.raises(KeyError):
        await wait_for_service("REDIS_URL", "redis", Flaky(1, KeyError("bug")),
                               retriable=_refused, fatal=(OSError,))


@pytest.mark.parametrize("servers", ["kafka:9092,", "kafka", ":9092", "kafka:port"])
def test_kafka_bootstrap_servers_must_be_host_port_pairs(servers: str) -> None:
    with pytest.raises(StartupError):
        check_kafka_servers(servers)


def test_good_kafka_bootstrap_servers_pass() -> None:
    check_kafka_servers("kafka-0:9092, kafka-1:9092,[::1]:9093")


def test_passwords_never_reach_messages() -> None:
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("postgresql://app:pw@db/x") == "postgresql://app:***@db/x"


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.main without touching the process's logging (pytest's capture lives there)."""
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)
    monkeypatch.setenv("JWT_SECRET", "x" * 32)
    monkeypatch.delenv("PORT", raising=False)


@pytest.mark.usefixtures("quiet_cli")
def test_cli_prints_one_line_and_exits_2_for_a_startup_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(settings: object) -> int:
        raise StartupError("REDIS_URL", "redis://cache:6379 cannot be reached: refused")

    monkeypatch.setattr(cli, "_serve", fails)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "hubbub: configuration error: REDIS_URL: redis://cache:6379 cannot be reached: refused"]


@pytest.mark.usefixtures("quiet_cli")
def test_cli_keeps_anything_else_to_one_line_and_exit_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(settings: object) -> int:
        raise RuntimeError("something broke\nwith details")

    monkeypatch.setattr(cli, "_serve", fails)
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("hubbub: failed: RuntimeError: something broke")
