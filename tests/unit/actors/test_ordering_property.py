"""Property: whatever the interleaving of concurrent senders, each sender's messages reach the
actor in the order that sender sent them, none lost and none duplicated."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.clock import ManualClock
from actors.system import ActorSystem
from tests.unit.actors.kit import CounterActor, CounterStore, Get, Record


async def _run(batches: list[int], mailbox_size: int, yields: list[int]) -> None:
    instances: list[CounterActor] = []
    store = CounterStore()

    def factory(key, context):  # type: ignore[no-untyped-def]
        instances.append(CounterActor(key, context, store))
        return instances[-1]

    system = ActorSystem(clock=ManualClock(), mailbox_size=mailbox_size)
    system.register(CounterActor, factory)
    ref = system.ref(CounterActor, "room")

    async def sender(sender_id: int, count: int) -> None:
        for seq in range(count):
            await ref.tell(Record(sender=sender_id, seq=seq))
            for _ in range(yields[(sender_id + seq) % len(yields)]):
                await asyncio.sleep(0)  # vary the interleaving, not a wait for anything

    await asyncio.gather(*(sender(i, n) for i, n in enumerate(batches)))
    await ref.ask(Get())
    seen = instances[0].seen
    assert len(seen) == sum(batches)
    for sender_id, count in enumerate(batches):
        assert [r.seq for r in seen if r.sender == sender_id] == list(range(count))
    await system.stop()


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8),
    mailbox_size=st.integers(min_value=1, max_value=16),
    yields=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=5),
)
def test_per_sender_order_is_preserved(batches: list[int], mailbox_size: int,
                                       yields: list[int]) -> None:
    asyncio.run(_run(batches, mailbox_size, yields))
