"""The pub/sub subscriber of the multiplexed client (storage/redis/subscriber.py) against a
real Redis: messages as redis-py's PubSub gives them, confirmations unless ignored, a bounded
wait, and a lost connection raised to the reader."""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storage.redis.multiplexed import MultiplexedRedis
from storage.redis.resp import Address
from storage.redis.subscriber import Subscriber
from tests.support.silent_server import silent_server

pytestmark = pytest.mark.integration


async def test_messages_and_confirmations_arrive_in_order(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    channel = f"{clean_redis_prefix}ch"
    subscriber = mux.pubsub()
    assert isinstance(subscriber, Subscriber)
    try:
        await subscriber.subscribe(channel)
        confirmed = await subscriber.get_message(timeout=5)
        assert confirmed == {"type": "subscribe", "pattern": None, "channel": channel.encode(),
                             "data": 1}
        for i in range(100):  # they go out in one write: the reader drains a batch
            assert await mux.publish(channel, f"m{i}") == 1
        got = [await subscriber.get_message(timeout=5) for _ in range(100)]
        assert [m["data"] for m in got if m] == [f"m{i}".encode() for i in range(100)]
        assert {m["type"] for m in got if m} == {"message"}
        await subscriber.unsubscribe(channel)
        gone = await subscriber.get_message(timeout=5)
        assert gone is not None and gone["type"] == "unsubscribe"
        assert await mux.publish(channel, "nobody") == 0
    finally:
        await subscriber.aclose()


async def test_confirmations_can_be_ignored_and_an_idle_wait_ends(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    channel = f"{clean_redis_prefix}quiet"
    subscriber = mux.pubsub(ignore_subscribe_messages=True)
    try:
        await subscriber.subscribe(channel)
        assert await subscriber.get_message(timeout=0.2) is None  # confirmation skipped
        await mux.publish(channel, "x")
        message = await subscriber.get_message(timeout=5)
        assert message is not None and message["data"] == b"x"
    finally:
        await subscriber.aclose()


async def test_a_lost_connection_is_raised_to_the_reader(
        mux: MultiplexedRedis, redis_url: str, clean_redis_prefix: str) -> None:
    channel = f"{clean_redis_prefix}lost"
    subscriber = mux.pubsub(ignore_subscribe_messages=True)
    other = redis.Redis.from_url(redis_url)
    try:
        await subscriber.subscribe(channel)
        await other.client_kill_filter(_type="pubsub", skipme=True)
        with pytest.raises(RedisConnectionError):
            while True:  # the kill ends the wait; nothing else is published here
                await subscriber.get_message(timeout=5)
    finally:
        await other.aclose()
        await subscriber.aclose()


async def test_other_pubsub_options_get_redis_py_pubsub(mux: MultiplexedRedis) -> None:
    pubsub = mux.pubsub(ignore_subscribe_messages=True, shard_hint="any")
    try:
        assert isinstance(pubsub, redis.client.PubSub)
    finally:
        await pubsub.aclose()


async def test_a_connection_that_stops_answering_is_taken_for_lost() -> None:
    """A server that accepts the connection and then says nothing (a Redis gone without a
    FIN): a PING after one silent interval, lost after a second."""
    async with silent_server() as port:
        subscriber = Subscriber(Address("127.0.0.1", port, None, None, 5.0),
                                health_interval=0.2)
        try:
            await subscriber.subscribe("anything")
            with pytest.raises(RedisConnectionError, match="PING"):
                for _ in range(100):  # bounded: 0.05 s waits, lost after ~0.4 s
                    assert await subscriber.get_message(timeout=0.05) is None
        finally:
            await subscriber.aclose()


async def test_a_ping_answered_keeps_the_connection(
        mux: MultiplexedRedis, clean_redis_prefix: str) -> None:
    subscriber = Subscriber(mux.address(), ignore_subscribe_messages=True,
                            health_interval=0.1)
    channel = f"{clean_redis_prefix}alive"
    try:
        await subscriber.subscribe(channel)
        for _ in range(10):  # ~1 s of idle waits: several PINGs, each answered
            assert await subscriber.get_message(timeout=0.1) is None
        await mux.publish(channel, "still here")
        message = await subscriber.get_message(timeout=5)
        assert message is not None and message["data"] == b"still here"
    finally:
        await subscriber.aclose()
