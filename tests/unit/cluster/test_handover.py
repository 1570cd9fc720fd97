"""Handover during a view change: the message in hand finishes, the rest of the mailbox goes
to the new owner in order, the old activation stops, and actors with timers are woken on
their new node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.polling import eventually
from tests.unit.cluster.kit import Add, Arm, Cluster, Get, Stall


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster("a")
    c.nodes["b"] = c._node("b")  # listening, but not in the view yet
    yield c
    for gate in c.storage.gates.values():
        gate.set()
    await c.stop()


def key_moving_to_b(cluster: Cluster) -> str:
    from actors.rendezvous import owner

    return next(f"k{i}" for i in range(1000) if owner(("a", "b"), "Counter", f"k{i}") == "b")


async def test_a_moved_actor_finishes_its_message_and_forwards_the_rest(
        cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = key_moving_to_b(cluster)
    await a.ref(key).ask(Add(1), timeout=1)
    assert key in a.live()
    stalled = asyncio.ensure_future(a.ref(key).ask(Stall("in-hand"), timeout=2))
    queued = [asyncio.ensure_future(a.ref(key).ask(Add(n), timeout=2)) for n in (2, 3, 4)]

    async def entered() -> bool:
        return a.system.snapshot().mailbox_depth.get("Counter", 0) == 3

    await eventually(entered, 2, "the three adds to queue behind the stalled message")
    cluster.view("a", "b")  # b joins: the key moves while a is busy with it
    assert key not in a.live()
    cluster.storage.gate("in-hand").set()
    await stalled
    await asyncio.gather(*queued)
    reply = await a.ref(key).ask(Get(), timeout=1)
    assert reply.node == "b" and reply.seen == [1, 2, 3, 4]
    assert a.system.stats.handovers == 1 and a.system.stats.forwarded >= 3
    await a.system.settled()
    assert key not in a.live() and key in b.live()


async def test_new_messages_after_the_change_go_straight_to_the_new_owner(
        cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = key_moving_to_b(cluster)
    await a.ref(key).tell(Add(1))
    await a.system.settled()
    cluster.view("a", "b")
    await b.ref(key).ask(Add(2), timeout=1)
    assert (await a.ref(key).ask(Get(), timeout=1)).seen == [1, 2]
    # One activation at a time: a's started once, b's once, nothing started twice on b.
    assert cluster.storage.starts.count(("b", key)) == 1


async def test_an_actor_with_timers_is_woken_on_its_new_node(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = key_moving_to_b(cluster)
    await a.ref(key).ask(Arm(), timeout=1)
    cluster.view("a", "b")

    async def woken() -> bool:
        return key in b.live() and ("b", key) in cluster.storage.starts

    await eventually(woken, 2, "the armed actor to be activated on b")
    assert key not in a.live()


async def test_an_idle_actor_without_timers_is_not_woken(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = key_moving_to_b(cluster)
    await a.ref(key).ask(Add(1), timeout=1)
    cluster.view("a", "b")
    await a.system.settled()
    assert key not in a.live() and key not in b.live()
    assert (await b.ref(key).ask(Get(), timeout=1)).total == 1
