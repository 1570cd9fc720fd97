"""The outbox relay's loop over an in-memory OutboxStore: seq order, batches, backoff on publish
failures without marking anything published, one leader at a time, lag metrics, cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client import CollectorRegistry

from protocols.events import EventEnvelope
from server.events.metrics import EventMetrics
from server.events.relay import OutboxRelay, RelayOptions
from tests.support.polling import eventually
from tests.unit.events_kit import FakeSleep, post_event, user_event

DEADLINE = 5.0


@dataclass
class Table:
    """The outbox and the cluster-wide lock, shared by every FakeOutbox (node)."""

    rows: dict[int, tuple[EventEnvelope, bool]] = field(default_factory=dict)
    holder: object | None = None
    wakers: list[asyncio.Event] = field(default_factory=list)
    purges: list[tuple[timedelta, timedelta, int]] = field(default_factory=list)

    def commit(self, *events: EventEnvelope) -> None:
        for event in events:
            self.rows[len(self.rows) + 1] = (event, False)
        for wake in self.wakers:
            wake.set()

    def unpublished(self) -> list[str]:
        return [e.id for e, published in self.rows.values() if not published]


class FakeOutbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.wake = asyncio.Event()
        table.wakers.append(self.wake)

    async def try_lead(self) -> bool:
        if self.table.holder in (None, self):
            self.table.holder = self
            return True
        return False

    async def resign(self) -> None:
        if self.table.holder is self:
            self.table.holder = None

    async def wait_for_events(self, timeout: float) -> None:
        await self.wake.wait()  # the fake's poll interval is infinite: only commits wake it
        self.wake.clear()

    async def pending(self, limit: int) -> list[tuple[int, EventEnvelope]]:
        assert self.table.holder is self
        return [(seq, e) for seq, (e, done) in sorted(self.table.rows.items()) if not done][
            :limit]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.table.rows[seq] = (self.table.rows[seq][0], True)

    async def backlog(self) -> tuple[int, float]:
        return len(self.table.unpublished()), 42.0 if self.table.unpublished() else 0.0

    async def purge(self, *, published_before: timedelta, processed_before: timedelta,
                    limit: int) -> int:
        self.table.purges.append((published_before, processed_before, limit))
        return 0


class Bus:
    """Records batches; fails the next `fail` publishes."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.batches: list[list[str]] = []
        self.attempts = 0
        self.changed = asyncio.Event()

    def subscribe(self, *args: object) -> None:
        raise AssertionError("not used")

    async def publish(self, events: Sequence[EventEnvelope]) -> None:
        self.attempts += 1
        self.changed.set()
        if self.attempts <= self.fail:
            raise ConnectionError("brokers unreachable")
        self.batches.append([e.id for e in events])

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def published(self) -> list[str]:
        return [i for batch in self.batches for i in batch]


def relay(table: Table, bus: Bus, registry: CollectorRegistry | None = None,
          sleep: FakeSleep | None = None, **options: object) -> OutboxRelay:
    return OutboxRelay(FakeOutbox(table), bus,
                       metrics=EventMetrics(registry or CollectorRegistry()),
                       options=RelayOptions(leader_retry=0.01, **options),  # type: ignore[arg-type]
                       sleep=sleep or FakeSleep())


async def test_publishes_in_seq_order_in_batches_then_waits_for_commits() -> None:
    table, bus = Table(), Bus()
    events = [user_event() for _ in range(5)]
    table.commit(*events)
    r = relay(table, bus, batch_size=2)
    await r.start()
    try:
        await eventually(lambda: _true(r.state == "waiting"), DEADLINE, "the relay to idle")
        assert bus.batches == [[e.id for e in events[:2]], [e.id for e in events[2:4]],
                               [events[4].id]]
        assert table.unpublished() == []
        later = post_event()
        table.commit(later)  # wakes the relay: the fake never polls
        await eventually(lambda: _true(bus.published()[-1:] == [later.id]), DEADLINE,
                         "the commit to be relayed")
    finally:
        await r.stop()
    assert r.state == "stopped" and table.holder is None


async def test_failed_publish_backs_off_and_marks_nothing_published() -> None:
    table, bus, sleep = Table(), Bus(fail=3), FakeSleep()
    registry = CollectorRegistry()
    events = [user_event(), user_event()]
    table.commit(*events)
    r = relay(table, bus, registry, sleep)
    await r.start()
    try:
        await eventually(lambda: _true(r.state == "waiting"), DEADLINE, "the relay to idle")
    finally:
        await r.stop()
    assert bus.attempts == 4 and bus.batches == [[e.id for e in events]]
    assert sleep.delays == [0.5, 1.0, 2.0]  # exponential backoff between attempts
    assert registry.get_sample_value("hubbub_events_publish_failures_total") == 3
    assert registry.get_sample_value("hubbub_events_published_total",
                                     {"topic": "hubbub.users"}) == 2


async def test_rows_stay_unpublished_while_the_bus_keeps_failing() -> None:
    table, bus = Table(), Bus(fail=10**9)
    registry = CollectorRegistry()
    table.commit(user_event())
    r = relay(table, bus, registry)
    await r.start()
    try:
        await eventually(lambda: _true(bus.attempts >= 5), DEADLINE, "several attempts")
        assert len(table.unpublished()) == 1
    finally:
        await r.stop()
    assert len(table.unpublished()) == 1
    assert registry.get_sample_value("hubbub_events_published_total",
                                     {"topic": "hubbub.users"}) is None


async def test_only_one_relay_leads_and_another_takes_over() -> None:
    table = Table()
    bus_a, bus_b = Bus(), Bus()
    a = relay(table, bus_a)
    await a.start()
    await eventually(lambda: _true(a.leading), DEADLINE, "a to lead")
    b = relay(table, bus_b)
    await b.start()
    try:
        await eventually(lambda: _true(b.state == "standby"), DEADLINE, "b to stand by")
        first = user_event()
        table.commit(first)
        await eventually(lambda: _true(bus_a.published() == [first.id]), DEADLINE, "a")
        await a.stop()
        await eventually(lambda: _true(b.leading), DEADLINE, "b to take over")
        second = user_event()
        table.commit(second)
        await eventually(lambda: _true(bus_b.published() == [second.id]), DEADLINE, "b")
        assert bus_a.published() == [first.id]
    finally:
        await a.stop()
        await b.stop()


async def test_lag_gauges_and_leader_flag() -> None:
    table, bus = Table(), Bus(fail=10**9)
    registry = CollectorRegistry()
    table.commit(user_event(), user_event())
    r = relay(table, bus, registry, lag_interval=0.0)
    await r.start()
    try:
        await eventually(lambda: _true(
            registry.get_sample_value("hubbub_outbox_pending_events") == 2), DEADLINE, "lag")
        assert registry.get_sample_value("hubbub_outbox_oldest_pending_seconds") == 42.0
        assert registry.get_sample_value("hubbub_outbox_relay_leader") == 1
    finally:
        await r.stop()
    assert registry.get_sample_value("hubbub_outbox_relay_leader") == 0


async def test_leader_runs_the_cleanup_with_the_retention() -> None:
    table = Table()
    r = relay(table, Bus(), outbox_retention=timedelta(hours=3), cleanup_batch=50)
    await r.start()
    try:
        await eventually(lambda: _true(bool(table.purges)), DEADLINE, "a cleanup")
    finally:
        await r.stop()
    assert table.purges[0] == (timedelta(hours=3), timedelta(days=7), 50)


async def _true(value: bool) -> bool:
    return value
