"""The actor runtime without I/O: ordering, backpressure, asks, supervision, passivation."""

from __future__ import annotations

import asyncio

import pytest

from actors.clock import ManualClock
from actors.errors import ActorCrashed, ActorStopped, AskTimeout, MailboxFull, Rejected
from actors.system import ActorSystem
from tests.unit.actors.kit import (
    Add,
    Block,
    Boom,
    CounterActor,
    CounterStore,
    Get,
    Later,
    Record,
    Refuse,
)


def make_system(store: CounterStore, clock: ManualClock | None = None,
                **options: object) -> tuple[ActorSystem, list[CounterActor]]:
    instances: list[CounterActor] = []

    def factory(key, context):  # type: ignore[no-untyped-def]
        actor = CounterActor(key, context, store)
        instances.append(actor)
        return actor

    system = ActorSystem(clock=clock or ManualClock(), **options)  # type: ignore[arg-type]
    system.register(CounterActor, factory)
    return system, instances


async def test_ask_returns_the_reply_and_state_is_per_key() -> None:
    system, _ = make_system(CounterStore())
    a, b = system.ref(CounterActor, "a"), system.ref(CounterActor, "b")
    assert await a.ask(Add(2)) == 2
    assert await a.ask(Add(3)) == 5
    assert await b.ask(Add(1)) == 1
    assert await a.ask(Get()) == 5
    await system.stop()


async def test_messages_are_processed_one_at_a_time_in_arrival_order() -> None:
    system, instances = make_system(CounterStore())
    ref = system.ref(CounterActor, "k")
    for seq in range(200):
        await ref.tell(Record(sender=0, seq=seq))
    assert await ref.ask(Get()) == 0  # the ask queues behind all 200 tells
    assert [r.seq for r in instances[0].seen] == list(range(200))
    await system.stop()


async def test_one_activation_per_key() -> None:
    system, instances = make_system(CounterStore())
    await asyncio.gather(*(system.ref(CounterActor, "same").ask(Add(1)) for _ in range(50)))
    assert len(instances) == 1
    assert await system.ref(CounterActor, "same").ask(Get()) == 50
    await system.stop()


async def test_a_full_mailbox_pushes_back() -> None:
    system, _ = make_system(CounterStore(), mailbox_size=2)
    ref = system.ref(CounterActor, "slow")
    block = Block(asyncio.Event())
    blocked = asyncio.create_task(ref.ask(block))
    await block.entered.wait()  # the actor is busy; its mailbox is empty
    ref.tell_nowait(Add(1))
    ref.tell_nowait(Add(1))
    with pytest.raises(MailboxFull):
        ref.tell_nowait(Add(1))
    waiting = asyncio.create_task(ref.tell(Add(1)))  # waits for room instead
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiting), 0.05)
    block.gate.set()
    assert await blocked == "unblocked"
    await waiting
    assert await ref.ask(Get()) == 3
    await system.stop()


async def test_ask_times_out() -> None:
    system, _ = make_system(CounterStore())
    gate = asyncio.Event()
    ref = system.ref(CounterActor, "stuck")
    with pytest.raises(AskTimeout):
        await ref.ask(Block(gate), timeout=0.05)
    gate.set()
    assert await ref.ask(Get()) == 0  # the actor carries on
    await system.stop()


async def test_a_crash_is_answered_and_the_actor_restarts_from_storage() -> None:
    store = CounterStore()
    system, instances = make_system(store)
    ref = system.ref(CounterActor, "c")
    assert await ref.ask(Add(7)) == 7
    with pytest.raises(ActorCrashed) as crash:
        await ref.ask(Boom())
    assert isinstance(crash.value.__cause__, RuntimeError)
    # The corrupted in-memory value is gone: a new instance reloaded 7 from the store.
    assert await ref.ask(Get()) == 7
    assert len(instances) == 2 and store.loads == 2
    assert system.snapshot().restarts == 1
    await system.stop()


async def test_a_crash_in_a_tell_does_not_stop_the_mailbox() -> None:
    system, _ = make_system(CounterStore())
    ref = system.ref(CounterActor, "t")
    await ref.tell(Add(1))
    await ref.tell(Boom())
    await ref.tell(Add(1))
    assert await ref.ask(Get()) == 2
    await system.stop()


async def test_rejections_reach_the_asker_without_a_restart() -> None:
    system, instances = make_system(CounterStore())
    ref = system.ref(CounterActor, "r")
    await ref.ask(Add(1))
    with pytest.raises(Rejected) as refusal:
        await ref.ask(Refuse())
    assert refusal.value.code == "not_allowed"
    assert len(instances) == 1 and system.snapshot().restarts == 0
    await system.stop()


async def test_idle_actors_are_passivated_and_come_back_with_their_state() -> None:
    clock = ManualClock()
    store = CounterStore()
    system, instances = make_system(store, clock, idle_timeout=60)
    ref = system.ref(CounterActor, "p")
    assert await ref.ask(Add(5)) == 5
    assert system.is_live(ref)
    clock.advance(59)
    assert system.is_live(ref)
    clock.advance(2)
    assert not system.is_live(ref)
    await system.settled()  # on_stop runs in a task
    assert instances[0].stopped
    assert system.snapshot().live == {}
    assert await ref.ask(Get()) == 5  # reactivated from storage
    assert len(instances) == 2
    await system.stop()


async def test_activity_postpones_passivation() -> None:
    clock = ManualClock()
    system, _ = make_system(CounterStore(), clock, idle_timeout=60)
    ref = system.ref(CounterActor, "busy")
    for _ in range(5):
        await ref.ask(Add(1))
        clock.advance(40)
    assert system.is_live(ref)
    await system.stop()


async def test_an_idle_actor_holds_no_task() -> None:
    system, _ = make_system(CounterStore())
    ref = system.ref(CounterActor, "quiet")
    await ref.ask(Add(1))
    await system.settled()
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert "actor:CounterActor/quiet" not in names
    await system.stop()


async def test_scheduled_messages_arrive_and_keep_the_actor_alive() -> None:
    clock = ManualClock()
    system, instances = make_system(CounterStore(), clock, idle_timeout=10)
    ref = system.ref(CounterActor, "timer")
    assert await ref.ask(Later(30, Add(4))) == "scheduled"
    clock.advance(15)  # past the idle timeout, but a timer is pending
    assert system.is_live(ref)
    clock.advance(20)  # the timer fires
    assert await ref.ask(Get()) == 4
    assert len(instances) == 1
    await system.stop()


async def test_stop_drains_then_refuses() -> None:
    system, instances = make_system(CounterStore())
    ref = system.ref(CounterActor, "s")
    for _ in range(10):
        await ref.tell(Add(1))
    await system.stop()
    assert instances[0].value == 10 and instances[0].stopped
    with pytest.raises(ActorStopped):
        await ref.tell(Add(1))
