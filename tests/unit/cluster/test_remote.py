"""Remote delivery between actor systems over an in-memory transport: asks, replies, typed
errors, timeouts, ordering, and what happens when a node is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from actors.errors import ActorCrashed, AskTimeout, Rejected, Unavailable
from actors.system import REMOTE_RETRY_WINDOW
from tests.support.polling import eventually
from tests.unit.cluster.kit import Add, Boom, Cluster, Get, Refuse, Stall, Value


async def undeliverable(cluster: Cluster, node: str, count: int) -> None:
    async def seen() -> bool:
        return cluster.nodes[node].router.stats.undeliverable >= count

    await eventually(seen, 2, f"{count} sends from {node} to find nobody listening")


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster("a", "b")
    yield c
    for gate in c.storage.gates.values():
        gate.set()
    await c.stop()


async def test_an_ask_is_served_by_the_one_owner(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = cluster.key_on("b")
    await a.ref(key).ask(Add(3), timeout=1)
    reply = await a.ref(key).ask(Get(), timeout=1)
    assert reply == Value(node="b", total=3, seen=[3])
    assert key in b.live() and key not in a.live()
    assert a.router.stats.sent["ask"] == 2 and b.router.stats.received["ask"] == 2


async def test_a_refusal_keeps_its_code_across_nodes(cluster: Cluster) -> None:
    key = cluster.key_on("b")
    with pytest.raises(Rejected) as refused:
        await cluster.nodes["a"].ref(key).ask(Refuse("not_member"), timeout=1)
    assert refused.value.code == "not_member"


async def test_a_crash_on_the_owner_is_a_crash_for_the_asker(cluster: Cluster) -> None:
    key = cluster.key_on("b")
    with pytest.raises(ActorCrashed):
        await cluster.nodes["a"].ref(key).ask(Boom(), timeout=1)
    # The owner restarted it; it answers again.
    assert (await cluster.nodes["a"].ref(key).ask(Get(), timeout=1)).node == "b"


async def test_an_unanswered_ask_times_out(cluster: Cluster) -> None:
    key = cluster.key_on("b")
    with pytest.raises(AskTimeout):
        await cluster.nodes["a"].ref(key).ask(Stall("never"), timeout=0.05)
    assert not cluster.nodes["a"].router._pending  # nothing left waiting


async def test_tells_from_one_node_arrive_in_order(cluster: Cluster) -> None:
    a = cluster.nodes["a"]
    key = cluster.key_on("b")
    for amount in range(1, 101):
        await a.ref(key).tell(Add(amount))
    for amount in range(101, 201):
        a.ref(key).tell_nowait(Add(amount))
    reply = await a.ref(key).ask(Get(), timeout=1)
    assert reply.seen == list(range(1, 201))


async def test_a_node_that_sent_to_a_stale_owner_is_passed_on(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    key = cluster.key_on("b")
    # Node a learns of a view without b; b still believes it is in. b's asks for the key now
    # land on a, and a's view is newer: b catches up (its refresh installs the view here).
    b.system.refresh_view = lambda: cluster.view("a", on=("b",))
    cluster.view("a", on=("a",))
    reply = await b.ref(key).ask(Add(1), timeout=1)
    assert reply is None
    assert (await a.ref(key).ask(Get(), timeout=1)).node == "a"


async def test_an_ask_to_a_dead_node_waits_for_the_next_view(cluster: Cluster) -> None:
    a = cluster.nodes["a"]
    key = cluster.key_on("b")
    cluster.kill("b")
    asked = asyncio.ensure_future(a.ref(key).ask(Get(), timeout=2))
    await undeliverable(cluster, "a", 1)
    assert not asked.done()
    cluster.view("a")  # the membership drops b
    assert (await asked).node == "a"


async def test_a_send_that_fails_counts_as_not_delivered(cluster: Cluster) -> None:
    """The transport could not send (its connection broke): the ask waits for the next
    view as for a dead node."""
    a = cluster.nodes["a"]
    key = cluster.key_on("b")
    cluster.network.broken.add("a")
    asked = asyncio.ensure_future(a.ref(key).ask(Get(), timeout=2))
    await undeliverable(cluster, "a", 1)
    assert not asked.done()
    cluster.network.broken.clear()
    cluster.view("a")  # the membership drops b
    assert (await asked).node == "a"


async def test_an_ask_nobody_can_serve_is_unavailable_with_a_hint(cluster: Cluster) -> None:
    key = cluster.key_on("b")
    cluster.kill("b")
    with pytest.raises(Unavailable) as gone:
        await cluster.nodes["a"].ref(key).ask(Get(), timeout=0.2)
    assert gone.value.retry_after > 0


async def test_a_tell_nowait_to_a_dead_node_is_sent_again_after_the_view(
        cluster: Cluster) -> None:
    a = cluster.nodes["a"]
    key = cluster.key_on("b")
    cluster.kill("b")
    a.ref(key).tell_nowait(Add(5))
    await undeliverable(cluster, "a", 1)
    cluster.view("a")

    async def arrived() -> bool:
        return (await a.ref(key).ask(Get(), timeout=1)).seen == [5]

    # Sent again from the background once the view moved on (so a later message may
    # overtake it: order holds between live nodes, not across a node's death).
    await eventually(arrived, 2, "the re-sent tell to reach the new owner")
    assert REMOTE_RETRY_WINDOW >= 5  # covers the membership timeout
