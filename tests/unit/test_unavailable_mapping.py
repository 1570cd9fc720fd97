"""Postgres (or Redis) down or starting is 503 `unavailable` with Retry-After over REST and
`unavailable` with `retry_after` over Socket.IO, never 500 / `internal` (issue 9, item 5). The
classification (server.faults) and both edges, with handlers that raise what asyncpg, the
pool and the actor runtime raise."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis import exceptions as redis_errors

from actors.errors import ActorCrashed
from protocols.socket import INTERNAL, UNAVAILABLE
from server.faults import RETRY_AFTER_SECONDS, unavailable_cause
from server.gateway import namespace
from server.http.middleware import problem_details
from server.http.problems import Unavailable
from storage.postgres.pool import DatabaseUnavailable


def _crash_caused_by(cause: BaseException) -> ActorCrashed:
    """What the actor runtime answers an asker when `receive` raised `cause`."""
    crash = ActorCrashed(f"RoomActor/x failed: {type(cause).__name__}: {cause}")
    crash.__cause__ = cause
    return crash


def _chained(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception:
            raise outer  # noqa: B904 (the implicit context is the point)
    except Exception as exc:
        return exc


UNAVAILABLE_ERRORS: dict[str, Callable[[], BaseException]] = {
    "pool could not connect": lambda: DatabaseUnavailable("cannot connect"),
    "connection refused": lambda: ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    "connection reset": lambda: ConnectionResetError(errno.ECONNRESET, "reset"),
    "starting up": lambda: asyncpg.CannotConnectNowError("the database system is starting up"),
    "too many connections": lambda: asyncpg.TooManyConnectionsError("too many clients"),
    "terminated by admin": lambda: asyncpg.AdminShutdownError("terminating connection"),
    "connection lost mid-query": lambda: asyncpg.ConnectionDoesNotExistError("lost"),
    "closed connection": lambda: asyncpg.InterfaceError("connection is closed"),
    "pool closing": lambda: asyncpg.InterfaceError("pool is closing"),
    "pool acquire timed out": lambda: TimeoutError(),
    "host unreachable": lambda: OSError(errno.EHOSTUNREACH, "No route to host"),
    "redis down": lambda: redis_errors.ConnectionError("Error 111 connecting"),
    "actor crashed on it": lambda: _crash_caused_by(ConnectionRefusedError(111, "refused")),
    "raised while handling it": lambda: _chained(RuntimeError("wrapped"),
                                                 asyncpg.CannotConnectNowError("starting")),
}
OTHER_ERRORS: dict[str, Callable[[], BaseException]] = {
    "a bug": lambda: KeyError("oops"),
    "a misused connection": lambda: asyncpg.InterfaceError(
        "cannot perform operation: another operation is in progress"),
    "a constraint": lambda: asyncpg.UniqueViolationError("duplicate key"),
    "a missing local file": lambda: FileNotFoundError(errno.ENOENT, "No such file"),
    "an actor bug": lambda: _crash_caused_by(ZeroDivisionError("division by zero")),
}


@pytest.mark.parametrize("make", UNAVAILABLE_ERRORS.values(), ids=UNAVAILABLE_ERRORS.keys())
def test_availability_errors_are_recognised(make: Callable[[], BaseException]) -> None:
    assert unavailable_cause(make()) is not None


@pytest.mark.parametrize("make", OTHER_ERRORS.values(), ids=OTHER_ERRORS.keys())
def test_other_errors_are_not(make: Callable[[], BaseException]) -> None:
    assert unavailable_cause(make()) is None


async def _answer(raise_: Callable[[], BaseException]) -> tuple[web.Response, dict[str, Any]]:
    """What the problem-details middleware makes of a handler raising `raise_()`."""
    async def handler(request: web.Request) -> web.Response:
        raise raise_()

    response = await problem_details(make_mocked_request("GET", "/boom"), handler)
    assert isinstance(response, web.Response) and response.body is not None
    assert response.content_type == "application/problem+json"
    return response, json.loads(response.body)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [UNAVAILABLE_ERRORS["pool could not connect"],
                                  UNAVAILABLE_ERRORS["starting up"],
                                  UNAVAILABLE_ERRORS["actor crashed on it"]],
                         ids=["pool", "starting", "actor"])
async def test_rest_answers_503_unavailable_with_retry_after(
        make: Callable[[], BaseException]) -> None:
    response, body = await _answer(make)
    assert response.status == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert body["code"] == "unavailable" and body["status"] == 503
    assert body["retry_after"] == RETRY_AFTER_SECONDS


async def test_rest_still_answers_500_for_a_bug() -> None:
    response, body = await _answer(OTHER_ERRORS["a bug"])
    assert response.status == 500 and body["code"] == "internal"
    assert "Retry-After" not in response.headers


async def test_every_503_problem_carries_retry_after() -> None:
    """Areas raise their own 503s (e.g. chat's `room_unavailable`): the code stays theirs."""
    response, body = await _answer(lambda: Unavailable("busy room", code="room_unavailable"))
    assert response.status == 503 and response.headers["Retry-After"]
    assert body["code"] == "room_unavailable"


async def _ack(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> dict[str, Any]:
    async def failing(gw: object, conn: object, payload: object) -> dict[str, Any]:
        raise exc

    monkeypatch.setattr(namespace, "ROUTES", {"room:join": failing})
    conn = SimpleNamespace(user_id="u1", sid="s1")
    return await namespace._handle(SimpleNamespace(), conn, "room:join", object())  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [UNAVAILABLE_ERRORS["actor crashed on it"],
                                  UNAVAILABLE_ERRORS["pool could not connect"],
                                  UNAVAILABLE_ERRORS["closed connection"]],
                         ids=["actor", "pool", "closed"])
async def test_socket_acks_unavailable_with_retry_after(
        monkeypatch: pytest.MonkeyPatch, make: Callable[[], BaseException]) -> None:
    ack = await _ack(monkeypatch, make())
    assert ack["ok"] is False
    assert ack["error"]["code"] == UNAVAILABLE
    assert ack["error"]["retry_after"] == RETRY_AFTER_SECONDS


@pytest.mark.parametrize("make", [OTHER_ERRORS["an actor bug"], OTHER_ERRORS["a bug"]],
                         ids=["actor", "handler"])
async def test_socket_still_acks_internal_for_a_bug(
        monkeypatch: pytest.MonkeyPatch, make: Callable[[], BaseException]) -> None:
    ack = await _ack(monkeypatch, make())
    assert ack["error"]["code"] == INTERNAL
