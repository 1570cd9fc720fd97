"""Redis keys the test session's servers wrote: removed when the session ends.

Every `hubbub serve` a test starts with a Redis gets a key prefix of its own (tests/e2e/
conftest.py `e2e_env`, the cluster tests, the drain test): presence, session records, chat
history, timelines, the cluster version, rate-limit buckets, ... live under it, many with
TTLs of days. HubbubProcess remembers each (Redis URL, prefix) it is given, and
`forget_remembered()` (tests/conftest.py, at session end, once every server has stopped)
deletes the keys under each, so a run leaves nothing behind in a shared Redis. Only prefixes
a test chose are remembered, never the production default `hubbub:`.
"""

from __future__ import annotations

import re

import redis

DEFAULT_PREFIX = "hubbub:"
_REMEMBERED: set[tuple[str, str]] = set()
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
_BATCH = 500


def remember(redis_url: str | None, prefix: str | None) -> None:
    """Note that a server of this session writes keys under `prefix` in that Redis."""
    if redis_url and prefix and prefix != DEFAULT_PREFIX:
        _REMEMBERED.add((redis_url, prefix))


def remembered() -> set[tuple[str, str]]:
    return set(_REMEMBERED)


def delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under `prefix` (taken literally, not as a pattern); returns how many.
    An unreachable Redis (one the session started and already stopped) deletes nothing."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=_GLOB_SPECIAL.sub(r"\\\1", prefix) + "*",
                                    count=1000):
            batch.append(key)
            if len(batch) >= _BATCH:
                deleted += client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += client.unlink(*batch)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()
    return deleted


def forget_remembered() -> int:
    """Delete the keys under every remembered prefix; returns how many were deleted."""
    deleted = 0
    while _REMEMBERED:
        deleted += delete_prefix(*_REMEMBERED.pop())
    return deleted
