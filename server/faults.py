"""Which failures mean "a backing service is unavailable right now, retry shortly".

Postgres (or Redis) down, restarting, still starting up or out of connection slots is not a
bug of ours and not the client's fault: REST answers 503 `unavailable` with `Retry-After`, the
gateway acks `{ok: false, error: {code: "unavailable", retry_after}}`. Both edges ask
`unavailable_cause(exc)`, which also looks through the exception's causes, so an actor that
crashed on such an error (ActorCrashed, whose `__cause__` is the original) counts as well.
"""

from __future__ import annotations

import errno
import socket

import asyncpg
import msgspec
from redis import exceptions as redis_errors

from protocols.problems import Problem
from server.http.problems import Unavailable
from storage.postgres.pool import DatabaseUnavailable

# Seconds a client is told to wait before retrying (Retry-After, socket ack `retry_after`).
RETRY_AFTER_SECONDS = 2

_POSTGRES = (
    DatabaseUnavailable,  # the pool could not open a connection (storage.postgres.pool)
    asyncpg.PostgresConnectionError,  # class 08: connection failure, does not exist...
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # 57P01: terminated by a restart or pg_terminate_backend
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
)
_REDIS = (redis_errors.ConnectionError, redis_errors.TimeoutError,
          redis_errors.BusyLoadingError)
# OSErrors that are about reaching a peer (not, say, a missing local file).
_NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE,
                   errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
                   errno.EHOSTDOWN}
# asyncpg's InterfaceError for a connection that went away under us (not for misuse).
_CLOSED_MARKERS = ("connection is closed", "pool is closing", "pool is closed",
                   "connection was closed")


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _POSTGRES + _REDIS):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        return any(marker in text for marker in _CLOSED_MARKERS)
    if isinstance(exc, ConnectionError | socket.gaierror):  # refused, reset, broken pipe
        return True
    if isinstance(exc, TimeoutError):  # a pool acquire or connect that timed out
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The service-availability error behind `exc` (itself, or one of its causes or contexts),
    or None when `exc` is something else (a bug, bad input...)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_unavailable(current):
            return current
        current = current.__cause__ or current.__context__
    return None


class ServiceUnavailable(Unavailable):
    """The REST answer: 503 `unavailable`, with `Retry-After` (and `retry_after` in the body)."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "A service this request needs is temporarily unavailable; "
                         f"retry in {RETRY_AFTER_SECONDS} s")
        self.retry_after = RETRY_AFTER_SECONDS

    def to_problem(self, instance: str | None = None) -> Problem:
        return msgspec.structs.replace(super().to_problem(instance),
                                       retry_after=self.retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
