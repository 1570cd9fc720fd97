"""storage/redis/connection.py: commands are written in the caller's task (no asyncio.wait_for,
which on Python 3.11 makes a task per command), still bounded by socket_timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio.connection as redis_connection
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.redis.client import create_redis
from storage.redis.connection import InlineWriteConnection

pytestmark = pytest.mark.integration


async def test_commands_and_pipelines_never_go_through_wait_for(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_wait_for(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a command was written through asyncio.wait_for")

    client = create_redis(redis_url)
    try:
        assert client.connection_pool.connection_class is InlineWriteConnection
        monkeypatch.setattr(redis_connection.asyncio, "wait_for", no_wait_for)
        assert await client.ping() is True
        async with client.pipeline(transaction=True) as pipe:  # a pooled connection
            pipe.echo(b"a").echo(b"b")
            assert await pipe.execute() == [b"a", b"b"]
    finally:
        await client.aclose()


class _StuckWriter:
    """A socket whose send buffer never drains."""

    def __init__(self) -> None:
        self.closed = False

    def writelines(self, data: Any) -> None:
        pass

    async def drain(self) -> None:
        await asyncio.get_running_loop().create_future()

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


async def test_a_write_that_does_not_finish_in_time_fails_and_drops_the_connection() -> None:
    conn = InlineWriteConnection(socket_timeout=0.05)
    writer = _StuckWriter()
    conn._reader, conn._writer = object(), writer  # type: ignore[assignment]
    with pytest.raises(RedisTimeoutError, match="Timeout writing"):
        await conn.send_packed_command(b"PING\r\n", check_health=False)
    assert writer.closed and not conn.is_connected
