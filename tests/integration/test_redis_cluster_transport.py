"""The cluster transport (storage/redis/cluster_transport.py) on a real Redis: sends from one
node reach the other in order, with the count of listeners (0 for a node that is not
listening), also across a reconnect of the publishing connection; a send lost with its
connection fails (or counts 0): the sender routes it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storage.redis.cluster_transport import RedisClusterTransport
from storage.redis.multiplexed import MultiplexedRedis
from tests.support.inbox import Inbox
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
Starter = Callable[[str], Awaitable["Node"]]


class Node(Inbox[bytes]):
    def __init__(self, client: redis.Redis, prefix: str, node_id: str) -> None:
        super().__init__()
        self.transport = RedisClusterTransport(client, prefix, node_id)


@pytest_asyncio.fixture
async def nodes(mux: MultiplexedRedis, clean_redis_prefix: str
                ) -> AsyncIterator[Callable[[str], Awaitable[Node]]]:
    started: list[Node] = []

    async def start(node_id: str) -> Node:
        node = Node(mux, clean_redis_prefix, node_id)
        await node.transport.start(node.add)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.transport.stop()


async def test_sends_arrive_in_order_with_the_count_of_listeners(nodes: Starter) -> None:
    a, b = await nodes("a"), await nodes("b")
    counts = await asyncio.gather(*(a.transport.send("b", b"m%d" % i) for i in range(200)))
    await b.wait_for(200)
    assert counts == [1] * 200
    assert b.got == [b"m%d" % i for i in range(200)]
    assert await a.transport.send("gone", b"x") == 0  # nobody listens there
    assert await a.transport.broadcast(b"all") == 2
    await a.wait_for(1)
    await b.wait_for(201)
    assert a.got == [b"all"] and b.got[-1] == b"all"


async def test_sends_made_while_the_connection_is_down_go_out_in_order(
        nodes: Starter, mux: MultiplexedRedis, redis_url: str) -> None:
    a, b = await nodes("a"), await nodes("b")
    protocol = await mux._connect()
    own_id = await protocol.send(mux._pack(("CLIENT ID",)))
    other = redis.Redis.from_url(redis_url)
    try:
        await other.client_kill_filter(_id=own_id)

        async def lost() -> bool:  # the kill reaches us as the connection's end
            return protocol.lost is not None

        await eventually(lost, 5, "the killed connection to end")
        # No connection: they queue, and the writer task connects again and sends them.
        sent = [a.transport.send("b", b"q%d" % i) for i in range(40)]
        assert await asyncio.gather(*sent) == [1] * 40
        await b.wait_for(40)
        assert b.got == [b"q%d" % i for i in range(40)]
    finally:
        await other.aclose()


async def test_a_send_lost_with_its_connection_reaches_nobody(
        nodes: Starter, mux: MultiplexedRedis, redis_url: str) -> None:
    a, b = await nodes("a"), await nodes("b")  # listening: a send that went out counts 1
    protocol = await mux._connect()
    own_id = await protocol.send(mux._pack(("CLIENT ID",)))
    other = redis.Redis.from_url(redis_url)
    try:
        await other.client_pause(10_000, all=False)  # the PUBLISH stays unanswered
        sent = a.transport.send("b", b"lost")
        await other.client_kill_filter(_id=own_id)
        try:
            count = await sent
        except RedisConnectionError:
            count = 0  # on the multiplexed connection: the PUBLISH failed with it
        assert count == 0
        assert b.got == []
    finally:
        await other.client_unpause()
        await other.aclose()
