"""The multiplexed Redis client (storage/redis/multiplexed.py) against a real Redis: replies
reach their own callers whatever the interleaving, Redis errors raise redis-py's exceptions,
a lost connection fails what was in flight and the next command connects again, a silent
server times out, and state-changing commands keep using the pool."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.redis.client import create_redis
from storage.redis.multiplexed import MultiplexedRedis
from tests.support.silent_server import silent_server

pytestmark = pytest.mark.integration


async def test_concurrent_commands_each_get_their_own_reply(
        mux: redis.Redis, clean_redis_prefix: str) -> None:
    keys = [f"{clean_redis_prefix}k{i}" for i in range(300)]
    await asyncio.gather(*(mux.set(key, str(i)) for i, key in enumerate(keys)))
    values = await asyncio.gather(*(mux.get(key) for key in keys),
                                  *(mux.incrby(key, 1000) for key in keys[:50]))
    assert values[:300] == [str(i).encode() for i in range(300)]
    assert values[300:] == [1000 + i for i in range(50)]
    # redis-py's response callbacks still apply (EXISTS -> int, SET -> bool, HGETALL -> dict).
    assert await mux.exists(keys[0]) == 1 and await mux.set(keys[0], "x", nx=True) is None
    await mux.hset(f"{clean_redis_prefix}h", mapping={"a": "1"})
    assert await mux.hgetall(f"{clean_redis_prefix}h") == {b"a": b"1"}


async def test_redis_errors_raise_and_leave_the_connection_usable(
        mux: redis.Redis, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}list"
    await mux.rpush(key, "a")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await mux.incr(key)
    with pytest.raises(NoScriptError):
        await mux.evalsha("0" * 40, 0)
    assert await mux.lrange(key, 0, -1) == [b"a"]


async def test_a_script_is_loaded_again_after_a_flush(
        mux: redis.Redis, clean_redis_prefix: str) -> None:
    script = mux.register_script("return redis.call('INCR', KEYS[1])")
    key = f"{clean_redis_prefix}n"
    assert await script(keys=[key]) == 1
    await mux.script_flush()
    assert await script(keys=[key]) == 2  # NOSCRIPT, SCRIPT LOAD, EVALSHA: redis-py's path


async def test_a_cancelled_caller_does_not_shift_the_replies(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}c"
    await mux.set(key, "mine")
    protocol = await mux._connect()
    abandoned = protocol.send(mux._pack(("GET", key)))  # on the wire, its reply not read yet
    abandoned.cancel()
    assert await mux.echo("next") == b"next"
    assert await mux.get(key) == b"mine"


async def test_a_lost_connection_fails_what_was_in_flight_then_reconnects(
        mux: MultiplexedRedis, redis_url: str, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}lost"
    protocol = await mux._connect()
    # CLIENT commands take the pool: ask the multiplexed connection itself.
    own_id = await protocol.send(mux._pack(("CLIENT ID",)))
    other = redis.Redis.from_url(redis_url)
    try:
        # Writes from every client wait while paused: the SET stays in flight until the
        # connection is killed.
        await other.client_pause(10_000, all=False)
        in_flight = protocol.send(mux._pack(("SET", key, "never")))
        await other.client_kill_filter(_id=own_id)
        with pytest.raises(RedisConnectionError):
            await in_flight
        await other.client_unpause()
        assert await mux.set(key, "again")  # connected again
        assert await other.get(key) == b"again"
    finally:
        await other.client_unpause()
        await other.aclose()


async def test_a_silent_server_times_out() -> None:
    async with silent_server() as port:
        pool = redis.ConnectionPool.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.6)
        client = MultiplexedRedis(connection_pool=pool)
        try:
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(client.get("k"), 10)
        finally:
            await client.aclose()


async def test_the_database_of_the_url_is_selected(
        redis_url: str, clean_redis_prefix: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/3"
    mux, plain = create_redis(url), redis.Redis.from_url(url)
    key = f"{clean_redis_prefix}db3"
    try:
        await mux.set(key, "3")
        assert await plain.get(key) == b"3"
        await plain.delete(key)
    finally:
        await mux.aclose()
        await plain.aclose()


async def test_execute_many_answers_each_command_in_order(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}many"
    replies = await mux.execute_many([("SET", key, "1"), ("INCR", key), ("LPUSH", key, "x"),
                                      ("GET", key), ("PUBLISH", f"{clean_redis_prefix}ch", "m")])
    assert replies[:2] == [b"OK", 2] and replies[3:] == [b"2", 0]
    assert isinstance(replies[2], ResponseError) and "WRONGTYPE" in str(replies[2])


async def test_a_pipeline_without_a_transaction_shares_the_connection(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    key, hash_key = f"{clean_redis_prefix}p", f"{clean_redis_prefix}ph"
    pipelines = []
    for _ in range(20):  # at once, as every room reading presence when a load starts
        pipe = mux.pipeline(transaction=False)
        pipe.set(key, "1").incr(key).hset(hash_key, mapping={"a": "1"}).hgetall(hash_key)
        pipe.exists(key).get(f"{clean_redis_prefix}missing")
        pipelines.append(pipe.execute())
    answers = await asyncio.gather(*pipelines)
    # The response callbacks apply as on redis-py's pipeline (SET -> True, HGETALL -> dict).
    assert all(a[0] is True and a[2] in (0, 1) and a[3:] == [{b"a": b"1"}, 1, None]
               for a in answers)
    assert sorted(a[1] for a in answers) == [2] * 20
    assert sum(count for count, _ in mux.connection_pool.get_connection_count()) == 0


async def test_a_pipelines_errors_raise_or_stand_in_place(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}pl"
    async with mux.pipeline(transaction=False) as pipe:
        pipe.rpush(key, "a").incr(key).llen(key)
        answers = await pipe.execute(raise_on_error=False)
    assert answers[0] == 1 and isinstance(answers[1], ResponseError) and answers[2] == 1
    async with mux.pipeline(transaction=False) as pipe:
        pipe.incr(key).llen(key)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await pipe.execute()
        assert pipe.command_stack == []  # reset, reusable


async def test_a_transaction_still_takes_a_pooled_connection(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    key = f"{clean_redis_prefix}tx"
    async with mux.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").incr(key)
        assert await pipe.execute() == [True, 2]
    assert sum(count for count, _ in mux.connection_pool.get_connection_count()) == 1
