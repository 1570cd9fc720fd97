"""The in-process event bus: per-consumer order, parallel consumers, publish waiting for the
handlers, topic filtering, retries then dead letters (fake delays), and a clean stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from protocols.events import EventEnvelope
from server.events.metrics import EventMetrics
from storage.event_delivery import RetryPolicy, Stopped
from storage.memory.dead_letters import MemoryDeadLetters
from storage.memory.event_bus import InProcessEventBus
from tests.unit.events_kit import FakeSleep, Recorder, never_wake, post_event, user_event

DEADLINE = 5.0


class Kit:
    def __init__(self, **bus_options: object) -> None:
        self.dead = MemoryDeadLetters()
        self.sleep = FakeSleep()
        self.registry = CollectorRegistry()
        options = {"sleep": self.sleep, **bus_options}
        self.bus = InProcessEventBus(dead_letters=self.dead, observer=EventMetrics(self.registry),
                                     **options)  # type: ignore[arg-type]

    def count(self, name: str, consumer: str) -> float:
        return self.registry.get_sample_value(f"hubbub_events_{name}_total",
                                              {"consumer": consumer}) or 0.0


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[Kit]:
    kit = Kit()
    yield kit
    await kit.bus.stop()


async def test_each_consumer_sees_its_events_in_publish_order(kit: Kit) -> None:
    a, b = Recorder(), Recorder()
    kit.bus.subscribe("a", ["hubbub.users"], a)
    kit.bus.subscribe("b", ["hubbub.users"], b)
    await kit.bus.start()
    batches = [[user_event() for _ in range(5)] for _ in range(10)]
    # Concurrent publishes: each consumer still sees one order, the order of the calls.
    await asyncio.gather(*(kit.bus.publish(batch) for batch in batches))
    expected = [e.id for batch in batches for e in batch]
    assert a.ids() == expected and b.ids() == expected


async def test_one_handler_call_at_a_time_per_consumer(kit: Kit) -> None:
    running = peak = 0

    async def handler(event: EventEnvelope) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)  # yield: a second call would overlap here
        running -= 1

    kit.bus.subscribe("serial", ["hubbub.users"], handler)
    await kit.bus.start()
    await asyncio.gather(*(kit.bus.publish([user_event(), user_event()]) for _ in range(20)))
    assert peak == 1


async def test_consumers_run_in_parallel(kit: Kit) -> None:
    b_ran = asyncio.Event()

    async def a(event: EventEnvelope) -> None:
        # Only finishes once b has handled the same event: with serial consumers this would
        # wait forever, so the deadline below fails the test instead.
        await b_ran.wait()

    async def b(event: EventEnvelope) -> None:
        b_ran.set()

    kit.bus.subscribe("a", ["hubbub.users"], a)
    kit.bus.subscribe("b", ["hubbub.users"], b)
    await kit.bus.start()
    await asyncio.wait_for(kit.bus.publish([user_event()]), DEADLINE)
    assert b_ran.is_set()


async def test_publish_returns_only_once_every_consumer_handled(kit: Kit) -> None:
    release = asyncio.Event()
    slow_done: list[str] = []

    async def slow(event: EventEnvelope) -> None:
        await release.wait()
        slow_done.append(event.id)

    fast = Recorder()
    kit.bus.subscribe("slow", ["hubbub.users"], slow)
    kit.bus.subscribe("fast", ["hubbub.users"], fast)
    await kit.bus.start()
    event = user_event()
    publishing = asyncio.create_task(kit.bus.publish([event]))
    await asyncio.wait_for(fast.arrived.wait(), DEADLINE)
    assert not publishing.done()  # the slow consumer has not handled it yet
    release.set()
    await asyncio.wait_for(publishing, DEADLINE)
    assert slow_done == [event.id]


async def test_consumers_get_only_their_topics(kit: Kit) -> None:
    users, posts, both = Recorder(), Recorder(), Recorder()
    kit.bus.subscribe("users", ["hubbub.users"], users)
    kit.bus.subscribe("posts", ["hubbub.posts"], posts)
    kit.bus.subscribe("both", ["hubbub.users", "hubbub.posts"], both)
    await kit.bus.start()
    events = [user_event(), post_event(), user_event(), post_event()]
    await kit.bus.publish(events)
    assert {e.type for e in users.seen} == {"follow.created"} and len(users.seen) == 2
    assert {e.type for e in posts.seen} == {"post.liked"} and len(posts.seen) == 2
    assert both.ids() == [e.id for e in events]


async def test_publish_with_no_interested_consumer_returns(kit: Kit) -> None:
    kit.bus.subscribe("posts", ["hubbub.posts"], Recorder())
    await kit.bus.start()
    await asyncio.wait_for(kit.bus.publish([user_event()]), DEADLINE)


async def test_failing_handler_is_retried_with_backoff_then_succeeds(kit: Kit) -> None:
    flaky = Recorder(fail=2)
    kit.bus.subscribe("flaky", ["hubbub.users"], flaky)
    await kit.bus.start()
    event = user_event()
    await kit.bus.publish([event])
    assert flaky.ids() == [event.id] and flaky.calls == 3
    assert kit.sleep.delays == [0.1, 0.2]
    assert kit.dead.parked == {}
    assert kit.count("failed", "flaky") == 2 and kit.count("handled", "flaky") == 1


async def test_exhausted_retries_dead_letter_the_event_and_go_on(
        kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    async def broken(event: EventEnvelope) -> None:
        calls.append(event.id)
        if event.type == "follow.created":
            raise ValueError("cannot handle this one")

    kit.bus.subscribe("broken", ["hubbub.users", "hubbub.posts"], broken)
    await kit.bus.start()
    bad, good = user_event(), post_event()
    with caplog.at_level(logging.ERROR, logger="hubbub.events"):
        await kit.bus.publish([bad, good])
    assert calls == [bad.id] * 5 + [good.id]  # five attempts, then the next event
    assert kit.sleep.delays == [0.1, 0.2, 0.4, 0.8]  # exponential, between attempts
    letter = kit.dead.parked["broken", bad.id]
    assert letter.event == bad and letter.attempts == 5
    assert letter.error == "ValueError: cannot handle this one"
    assert kit.count("dead_lettered", "broken") == 1 and kit.count("failed", "broken") == 5
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and logged[0].event_id == bad.id  # type: ignore[attr-defined]
    assert logged[0].consumer == "broken"  # type: ignore[attr-defined]


async def test_backoff_is_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_a_dead_letter_that_cannot_be_parked_fails_the_publish() -> None:
    class Down:
        async def park(self, *args: object, **kwargs: object) -> None:
            raise ConnectionError("database down")

    bus = InProcessEventBus(dead_letters=Down(), sleep=FakeSleep(),
                            policy=RetryPolicy(attempts=2))
    bus.subscribe("x", ["hubbub.users"], Recorder(fail=99))
    await bus.start()
    try:
        # The relay then keeps the rows unpublished and tries again later.
        with pytest.raises(ConnectionError):
            await bus.publish([user_event()])
    finally:
        await bus.stop()


async def test_stop_abandons_a_backoff_and_fails_the_waiting_publish() -> None:
    bus = InProcessEventBus(dead_letters=MemoryDeadLetters(), sleep=never_wake)
    failing = Recorder(fail=99)
    bus.subscribe("x", ["hubbub.users"], failing)
    await bus.start()
    publishing = asyncio.create_task(bus.publish([user_event(), user_event()]))
    await asyncio.wait_for(failing.called.wait(), DEADLINE)  # first call failed: backing off
    await asyncio.wait_for(bus.stop(), DEADLINE)
    with pytest.raises(Stopped):
        await publishing
    assert failing.calls == 1
    with pytest.raises(Stopped):
        await bus.publish([user_event()])


async def test_stop_lets_the_running_handler_finish() -> None:
    bus = InProcessEventBus(dead_letters=MemoryDeadLetters())
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(event: EventEnvelope) -> None:
        started.set()
        await release.wait()
        finished.append(event.id)

    bus.subscribe("x", ["hubbub.users"], handler)
    await bus.start()
    first, second = user_event(), user_event()
    publishing = asyncio.create_task(bus.publish([first, second]))
    await asyncio.wait_for(started.wait(), DEADLINE)
    stopping = asyncio.create_task(bus.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # waits for the handler in flight
    release.set()
    await asyncio.wait_for(stopping, DEADLINE)
    assert finished == [first.id]  # the second was never started
    with pytest.raises(Stopped):
        await publishing
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events:")]


async def test_subscriptions_are_checked(kit: Kit) -> None:
    kit.bus.subscribe("a", ["hubbub.users"], Recorder())
    with pytest.raises(ValueError, match="already subscribed"):
        kit.bus.subscribe("a", ["hubbub.posts"], Recorder())
    with pytest.raises(ValueError, match="unknown"):
        kit.bus.subscribe("b", ["hubbub.user"], Recorder())
    with pytest.raises(ValueError):
        kit.bus.subscribe("c", [], Recorder())
    await kit.bus.start()
    with pytest.raises(RuntimeError, match="after the bus started"):
        kit.bus.subscribe("d", ["hubbub.users"], Recorder())
