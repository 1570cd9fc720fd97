"""The Kafka event bus against librdkafka's mock cluster (tests/integration/conftest.py): publish
then consume through consumer groups, key order, topic filtering, at-least-once with commits
only after the handler, redelivery after a failure, dead letters, readiness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from protocols.events import EventEnvelope
from protocols.ids import new_id
from storage.event_delivery import RetryPolicy, Sleep, Stopped
from storage.kafka.event_bus import KafkaEventBus
from storage.memory.dead_letters import MemoryDeadLetters
from tests.support.kafka_mock import first_broker, mock_kafka_cluster
from tests.support.services import free_port, reachable
from tests.unit.events_kit import FakeSleep, Recorder, never_wake, post_event, user_event

pytestmark = pytest.mark.integration

DEADLINE = 15.0
# Short group timeouts: a member leaving makes the mock wait about a session timeout before
# the next one's join completes (restart tests).
FAST_GROUPS = {"session_timeout_ms": 1000, "heartbeat_interval_ms": 250}


class Harness:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.buses: list[KafkaEventBus] = []

    def bus(self, *, sleep: Sleep | None = None, policy: RetryPolicy | None = None,
            dead_letters: MemoryDeadLetters | None = None,
            stop_timeout: float = 10.0) -> KafkaEventBus:
        bus = KafkaEventBus(self.bootstrap, dead_letters=dead_letters or MemoryDeadLetters(),
                            sleep=sleep or FakeSleep(), policy=policy,
                            client_id=f"test-{uuid.uuid4().hex[:6]}",
                            consumer_options=FAST_GROUPS, stop_timeout=stop_timeout)
        self.buses.append(bus)
        return bus


@pytest_asyncio.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[Harness]:
    harness = Harness(kafka_bootstrap)
    yield harness
    for bus in harness.buses:
        await bus.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events:")]


def consumer_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def until(predicate: Callable[[], bool], recorder: Recorder, what: str) -> None:
    """Wait (event-driven) until `predicate` holds after some handler call."""
    async def loop() -> None:
        while not predicate():
            recorder.called.clear()
            if predicate():
                return
            await recorder.called.wait()
    try:
        await asyncio.wait_for(loop(), DEADLINE)
    except TimeoutError:
        raise TimeoutError(f"timed out waiting for {what}") from None


def only(recorder: Recorder, events: list[EventEnvelope]) -> list[str]:
    """The ids the handler saw among `events` (a new group also reads earlier tests' events)."""
    wanted = {e.id for e in events}
    return [i for i in recorder.ids() if i in wanted]


async def test_publish_then_consume_in_key_order_by_topic(kafka: Harness) -> None:
    users, posts = Recorder(), Recorder()
    subscriber = kafka.bus()
    subscriber.subscribe(consumer_name(), ["hubbub.users"], users)
    subscriber.subscribe(consumer_name(), ["hubbub.posts"], posts)
    await subscriber.start()
    publisher = kafka.bus()  # another node: publishing needs no subscription
    await publisher.start()

    follower = new_id()
    same_key = [user_event(follower) for _ in range(6)]
    other = [user_event() for _ in range(4)]
    liked = post_event()
    await publisher.publish([*same_key[:3], *other, liked, *same_key[3:]])

    everything = [*same_key, *other]
    await until(lambda: len(only(users, everything)) == len(everything), users, "user events")
    assert only(users, same_key) == [e.id for e in same_key]  # one key: one partition, in order
    assert liked.id not in users.ids()
    await until(lambda: liked.id in posts.ids(), posts, "the post event")
    assert not set(posts.ids()) & {e.id for e in everything}
    received = next(e for e in users.seen if e.id == same_key[0].id)
    assert received == same_key[0]  # the envelope survives the trip unchanged


async def test_records_carry_the_key_and_the_json_envelope(
        kafka: Harness, kafka_bootstrap: str) -> None:
    bus = kafka.bus()
    await bus.start()
    event = user_event()
    await bus.publish([event])
    # No group: every partition, from the beginning.
    reader = AIOKafkaConsumer("hubbub.users", bootstrap_servers=kafka_bootstrap,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    try:
        found = None
        async with asyncio.timeout(DEADLINE):
            while found is None:
                batch = await reader.getmany(timeout_ms=500)
                found = next((r for records in batch.values() for r in records
                              if r.key == event.key.encode()), None)
        assert msgspec.json.decode(found.value, type=EventEnvelope) == event
    finally:
        await reader.stop()


async def test_unhandled_event_is_not_committed_and_comes_again(kafka: Harness) -> None:
    name, key = consumer_name(), new_id()
    done, poison = user_event(key), user_event(key)  # one key: one partition, in this order
    first = Recorder()

    async def fails_on_poison(event: EventEnvelope) -> None:
        await first(event)
        if event.id == poison.id:
            raise RuntimeError("not now")

    # The failure's backoff never ends by itself: the bus stops during it.
    bus = kafka.bus(sleep=never_wake)
    bus.subscribe(name, ["hubbub.users"], fails_on_poison)
    await bus.start()
    await bus.publish([done, poison])
    await until(lambda: poison.id in first.ids(), first, "the failing call")
    await bus.stop()

    second = Recorder()
    again = kafka.bus()
    again.subscribe(name, ["hubbub.users"], second)  # the same consumer group
    await again.start()
    await until(lambda: poison.id in second.ids(), second, "the redelivery")
    assert done.id not in second.ids()  # committed after it was handled: not redelivered


async def test_retries_then_dead_letter_then_commit(kafka: Harness) -> None:
    name, key = consumer_name(), new_id()
    bad, good = user_event(key), user_event(key)
    seen = Recorder()

    async def handler(event: EventEnvelope) -> None:
        await seen(event)
        if event.id == bad.id:
            raise ValueError("bad event")

    sleep, dead = FakeSleep(), MemoryDeadLetters()
    bus = kafka.bus(sleep=sleep, dead_letters=dead, policy=RetryPolicy(attempts=3))
    bus.subscribe(name, ["hubbub.users"], handler)
    await bus.start()
    await bus.publish([bad, good])
    await until(lambda: good.id in seen.ids(), seen, "the event after the bad one")
    assert only(seen, [bad, good]) == [bad.id] * 3 + [good.id]
    assert sleep.delays == [0.1, 0.2]
    assert dead.parked[name, bad.id].error == "ValueError: bad event"
    await bus.stop()

    # Parked counts as done: a restarted member of the group sees neither again.
    later = user_event(key)
    after = Recorder()
    again = kafka.bus()
    again.subscribe(name, ["hubbub.users"], after)
    await again.start()
    await again.publish([later])
    await until(lambda: later.id in after.ids(), after, "the next event")
    assert only(after, [bad, good]) == []


async def test_an_event_that_cannot_be_parked_is_consumed_again(kafka: Harness) -> None:
    key = new_id()
    bad, good = user_event(key), user_event(key)
    seen = Recorder()

    async def handler(event: EventEnvelope) -> None:
        await seen(event)
        if event.id == bad.id:
            raise ValueError("bad event")

    class FlakyDeadLetters(MemoryDeadLetters):
        """The database is down for the first park."""

        async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                       attempts: int) -> None:
            self.tries = getattr(self, "tries", 0) + 1
            if self.tries == 1:
                raise ConnectionError("database down")
            await super().park(consumer, event, error=error, attempts=attempts)

    dead = FlakyDeadLetters()
    bus = kafka.bus(dead_letters=dead, policy=RetryPolicy(attempts=2))
    name = consumer_name()
    bus.subscribe(name, ["hubbub.users"], handler)
    await bus.start()
    await bus.publish([bad, good])
    await until(lambda: good.id in seen.ids(), seen, "the event after the bad one")
    # Two attempts, parking failed, the partition was rewound: two more, parked, then on.
    assert only(seen, [bad, good]) == [bad.id] * 4 + [good.id]
    assert (name, bad.id) in dead.parked


async def test_a_handler_still_running_at_stop_is_cancelled(kafka: Harness) -> None:
    started = asyncio.Event()

    async def stuck(event: EventEnvelope) -> None:
        started.set()
        await asyncio.Event().wait()

    bus = kafka.bus(stop_timeout=0.2)
    bus.subscribe(consumer_name(), ["hubbub.posts"], stuck)
    await bus.start()
    await bus.publish([post_event()])
    await asyncio.wait_for(started.wait(), DEADLINE)
    await asyncio.wait_for(bus.stop(), DEADLINE)  # the fixture checks no task is left


async def test_readiness_and_publishing_when_stopped(kafka: Harness) -> None:
    bus = kafka.bus()
    with pytest.raises(ConnectionError):
        await bus.check()
    await bus.start()
    await bus.check()
    await bus.stop()
    with pytest.raises(Stopped):
        await bus.publish([user_event()])


async def test_start_fails_fast_when_no_broker_answers() -> None:
    bus = KafkaEventBus(f"127.0.0.1:{free_port()}", dead_letters=MemoryDeadLetters())
    bus.subscribe(consumer_name(), ["hubbub.users"], Recorder())
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(bus.start(), DEADLINE)
    with pytest.raises(Stopped):
        await bus.publish([user_event()])


async def test_the_session_cluster_is_up(kafka_bootstrap: str) -> None:
    assert reachable(*first_broker(kafka_bootstrap))


def test_a_mock_cluster_stops_listening_when_closed() -> None:
    with mock_kafka_cluster() as bootstrap:
        assert reachable(*first_broker(bootstrap))
    assert not reachable(*first_broker(bootstrap), timeout=0.5)
