"""Room channels between nodes (storage/redis/room_channels.py) on a real Redis: a room's
packets reach exactly the nodes holding sockets in it, once each, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as redis

from storage.redis.multiplexed import MultiplexedRedis
from storage.redis.room_channels import RedisRoomChannels
from tests.support.inbox import Inbox
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


class Node(Inbox[tuple[str, str, list[str]]]):
    def __init__(self, client: redis.Redis, prefix: str, node_id: str) -> None:
        super().__init__()
        self.channels = RedisRoomChannels(client, prefix, node_id)

    async def deliver(self, room_id: str, packet: str, skip: list[str]) -> None:
        self.add((room_id, packet, skip))


@pytest_asyncio.fixture
async def nodes(redis_url: str, clean_redis_prefix: str) -> AsyncIterator[Callable[[str], Node]]:
    client = redis.Redis.from_url(redis_url)
    started: list[Node] = []

    def start(node_id: str) -> Node:
        node = Node(client, clean_redis_prefix, node_id)
        node.channels.start(node.deliver)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.channels.stop()
    await client.aclose()


async def listening(*nodes: Node) -> None:
    async with asyncio.timeout(5):
        for node in nodes:
            await node.channels.wait_listening()


async def test_packets_reach_the_nodes_holding_the_room_in_order(
        nodes: Callable[[str], Node]) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    await listening(a, b, c)
    await b.channels.hold("r1")
    await c.channels.hold("r2")  # another room: hears nothing of r1
    await a.channels.hold("r1")  # the sender holds it too: it ignores its own packets

    counts = [await a.channels.publish("r1", f'2["message:new",{i}]', []) for i in range(50)]

    await b.wait_for(50)
    assert counts == [2] * 50  # Redis counted a and b
    assert [packet for _, packet, _ in b.got] == [f'2["message:new",{i}]' for i in range(50)]
    assert {room for room, _, _ in b.got} == {"r1"}
    assert a.got == [] and c.got == []
    assert (a.channels.published, b.channels.received) == (50, 50)


async def test_the_last_release_stops_the_node_receiving(nodes: Callable[[str], Node]) -> None:
    a, b = nodes("a"), nodes("b")
    await listening(a, b)
    await b.channels.hold("r1")
    await b.channels.hold("r1")  # two sockets of b in the room
    await b.channels.release("r1")
    assert await a.channels.publish("r1", "2[1]", ["sid-x"]) == 1  # still held once
    await b.wait_for(1)
    assert b.got == [("r1", "2[1]", ["sid-x"])]
    await b.channels.release("r1")
    assert b.channels.holds("r1") == 0
    assert await a.channels.publish("r1", "2[2]", []) == 0


async def test_a_dropped_subscriber_subscribes_again_to_every_held_room(
        nodes: Callable[[str], Node], redis_url: str, clean_redis_prefix: str,
        redis_client: redis.Redis) -> None:
    a = nodes("a")
    name = f"{clean_redis_prefix.replace(':', '-')}b"
    b_client = redis.Redis.from_url(redis_url, client_name=name)
    b = Node(b_client, clean_redis_prefix, "b")
    b.channels.start(b.deliver)
    try:
        await listening(a, b)
        await b.channels.hold("r1")
        # Redis drops b's connections (a restart, the output buffer limit); only b's.
        for info in await redis_client.client_list():
            if info.get("name") == name:
                await redis_client.client_kill_filter(_id=info["id"])
        # What is published while b reconnects is lost; b hears the room again by itself.
        sent = 0

        async def heard() -> bool:
            nonlocal sent
            await a.channels.publish("r1", f"2[{sent}]", [])
            sent += 1
            return await b.received_within(0.05)

        await eventually(heard, 10, "b to hear the room again")
        assert b.channels.holds("r1") == 1 and b.channels.listening
        heard = len(b.got)
        assert await a.channels.publish("r1", '2["after"]', []) == 1
        await b.wait_for(heard + 1)
        assert b.got[-1] == ("r1", '2["after"]', [])
    finally:
        await b.channels.stop()
        await b_client.aclose()


async def test_on_the_multiplexed_connection_packets_leave_in_order_without_waiting(
        nodes: Callable[[str], Node], mux: MultiplexedRedis, redis_url: str,
        clean_redis_prefix: str) -> None:
    """The node's own client: `publish` queues the PUBLISH on the connection and returns
    None, the packets arrive in order, and a failure reported later is counted."""
    b = nodes("b")
    a = Node(mux, clean_redis_prefix, "a")
    a.channels.start(a.deliver)
    try:
        await listening(a, b)
        await b.channels.hold("r1")
        assert await mux.ping()  # connected: publishes take the no-wait path
        published = [await a.channels.publish("r1", f"2[{i}]", []) for i in range(50)]
        await b.wait_for(50)
        assert published[-1] is None and a.channels.published == 50
        assert [packet for _, packet, _ in b.got] == [f"2[{i}]" for i in range(50)]

        protocol = await mux._connect()
        own_id = await protocol.send(mux._pack(("CLIENT ID",)))
        other = redis.Redis.from_url(redis_url)
        try:
            await other.client_pause(10_000, all=False)  # the PUBLISH stays unanswered
            assert await a.channels.publish("r1", "2[lost]", []) is None
            await other.client_kill_filter(_id=own_id)

            async def counted() -> bool:
                return a.channels.failures == 1

            await eventually(counted, 5, "the lost publish to be counted")
        finally:
            await other.client_unpause()
            await other.aclose()
    finally:
        await a.channels.stop()
