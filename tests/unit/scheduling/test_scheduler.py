"""The scheduler on a ManualClock over the in-memory ClaimStore: it sleeps until the next due
time (and wakes early when told), takes posts in priority order, retries transient failures
on the backoff schedule, fails permanent ones at once, keeps targets independent, and hands
a dead node's claim to another node once the lease ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from protocols.events import PostFailed, PostPublished, payload
from protocols.publishing import PublishRequest, PublishResult
from protocols.schedule_records import Settlement
from server.scheduling.backoff import RetryPolicy
from tests.unit.scheduling.kit import Rig, ok, permanent, transient

A = "0190a0b0-0000-7000-8000-00000000000a"


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.stop()


def event_types(rig: Rig) -> list[str]:
    return [event.type for event in rig.store.events]


async def test_sleeps_until_the_due_time_then_publishes_once(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub")
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(10))
    await rig.start()
    await rig.advance(9.99)
    assert hubbub.calls == [] and rig.store.claims == []
    await rig.advance(0.02)
    assert [c.scheduled_post_id for c in hubbub.calls] == ["p1"]
    post = rig.store.posts["p1"]
    assert post.status == "published" and post.post_id == "ext-p1-0"
    assert post.published_at is not None
    assert (post.published_at - post.scheduled_for).total_seconds() < 0.1
    assert event_types(rig) == ["post.published"]
    published = payload(rig.store.events[0])
    assert isinstance(published, PostPublished) and published.post_id == "ext-p1-0"
    # Nothing else to do: one timer (the safety tick), no polling in between.
    await rig.advance(1000)
    assert len(hubbub.calls) == 1


async def test_a_new_schedule_wakes_a_sleeping_scheduler(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub")
    await rig.start()  # nothing due: asleep for the whole tick (30 s)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.advance(1.01)
    assert hubbub.calls == []  # it could not know without a wake-up
    rig.store.add("p2", author_id=A, scheduled_for=rig.at(1))
    rig.schedulers[0].wake()
    await rig.idle()
    assert [c.scheduled_post_id for c in hubbub.calls] == ["p1"]  # due already
    await rig.advance(1.01)
    assert [c.scheduled_post_id for c in hubbub.calls] == ["p1", "p2"]


async def test_priority_order_then_oldest_due_first() -> None:
    rig = Rig(concurrency=1, batch_size=1)
    hubbub = rig.publisher("hubbub")
    for name, priority, due in [("low", 3, 1.0), ("normal-late", 2, 2.0), ("urgent", 0, 3.0),
                                ("normal-early", 2, 1.5), ("high", 1, 2.5)]:
        rig.store.add(name, author_id=A, scheduled_for=rig.at(due), priority=priority)
    await rig.advance(5)  # all due before the scheduler starts: a backlog
    await rig.start()
    try:
        assert [c.scheduled_post_id for c in hubbub.calls] == [
            "urgent", "high", "normal-early", "normal-late", "low"]
    finally:
        await rig.stop()


async def test_transient_failures_retry_on_the_backoff_schedule(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub", transient(), transient(), ok)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.start()
    await rig.advance(1.01)
    post = rig.store.posts["p1"]
    assert post.status == "publishing" and post.claimed_by is None  # waits for its retry
    [target] = post.targets
    assert target.attempts == 1 and target.last_error_code == "server_error"
    assert target.next_attempt_at is not None
    wait = (target.next_attempt_at - rig.now()).total_seconds()
    assert 1.0 <= wait <= 2.0  # base 2 s: half of it fixed, half jitter
    await rig.advance(wait - 0.01)
    assert len(hubbub.calls) == 1
    await rig.advance(0.02)
    assert len(hubbub.calls) == 2
    target = rig.store.posts["p1"].targets[0]
    wait = (target.next_attempt_at - rig.now()).total_seconds()  # type: ignore[operator]
    assert 2.0 <= wait <= 4.0  # the step doubled
    await rig.advance(wait + 0.01)
    assert len(hubbub.calls) == 3
    assert rig.store.posts["p1"].status == "published"
    assert [(a.attempt, a.outcome) for a in rig.store.attempts] == [
        (1, "transient"), (2, "transient"), (3, "published")]
    assert all(a.retry_at is not None for a in rig.store.attempts[:2])
    # Every attempt carried the same idempotency key.
    assert {c.idempotency_key for c in hubbub.calls} == {"p1:0"}
    assert [c.attempt for c in hubbub.calls] == [1, 2, 3]
    assert event_types(rig) == ["post.published"]


async def test_permanent_failure_fails_at_once_into_the_dead_letters(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub", permanent("duplicate_content"))
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.start()
    await rig.advance(1.01)
    await rig.advance(3600)
    assert len(hubbub.calls) == 1
    post = rig.store.posts["p1"]
    assert post.status == "failed" and post.failed_at is not None
    assert post.next_attempt_at is None
    assert post.targets[0].status == "failed"
    assert post.targets[0].last_error_code == "duplicate_content"
    assert event_types(rig) == ["post.failed"]
    assert [a.outcome for a in rig.store.attempts] == ["permanent"]


async def test_attempts_run_out_then_a_retry_starts_a_new_round(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub", transient(), transient(), transient(), ok)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.start()
    await rig.advance(1.01)
    for _ in range(2):
        await rig.advance(60)
    assert len(hubbub.calls) == 3  # SCHEDULE_MAX_ATTEMPTS = 3 in the rig
    assert rig.store.posts["p1"].status == "failed"
    rig.store.retry("p1")  # POST .../retry
    rig.schedulers[0].wake()
    await rig.idle()
    assert len(hubbub.calls) == 4 and rig.store.posts["p1"].status == "published"
    assert rig.store.posts["p1"].targets[0].attempts == 1  # a fresh round
    assert event_types(rig) == ["post.failed", "post.published"]


async def test_each_target_succeeds_or_fails_on_its_own(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub")
    webhook = rig.publisher("webhook", transient(), permanent("endpoint_gone"))
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1), kinds=("hubbub", "webhook"))
    await rig.start()
    await rig.advance(1.01)
    post = rig.store.posts["p1"]
    assert [t.status for t in post.targets] == ["published", "pending"]
    await rig.advance(60)
    post = rig.store.posts["p1"]
    assert [t.status for t in post.targets] == ["published", "failed"]
    assert len(hubbub.calls) == 1  # a published target is never tried again
    assert len(webhook.calls) == 2
    assert post.status == "failed" and post.post_id == "ext-p1-0"
    failed = payload(rig.store.events[-1])
    assert isinstance(failed, PostFailed)
    assert failed.post_id == "ext-p1-0"
    assert [t.status for t in failed.targets] == ["published", "failed"]


async def test_rate_limited_target_waits_for_the_reset_and_is_reported(rig: Rig) -> None:
    rig.publisher("x", transient("rate_limited", retry_after=120.0), ok)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1), kinds=("x",))
    await rig.start()
    await rig.advance(1.01)
    assert event_types(rig) == ["rate_limit.reached"]
    target = rig.store.posts["p1"].targets[0]
    assert (target.next_attempt_at - rig.now()).total_seconds() >= 119.9  # type: ignore[operator]
    await rig.advance(100)
    assert rig.store.posts["p1"].status == "publishing"
    await rig.advance(21)
    assert rig.store.posts["p1"].status == "published"


async def test_a_missing_publisher_or_a_raising_one_is_transient(rig: Rig) -> None:
    def boom(request: PublishRequest) -> PublishResult:
        raise RuntimeError("socket closed")

    rig.publisher("webhook", boom)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1), kinds=("webhook", "x"))
    await rig.start()
    await rig.advance(1.01)
    codes = sorted((a.kind, a.outcome, a.error_code) for a in rig.store.attempts)
    assert codes == [("webhook", "transient", "error"), ("x", "transient", "no_publisher")]


async def test_a_slow_publisher_times_out() -> None:
    rig = Rig()

    class Slow:
        kind = "webhook"

        async def publish(self, request: PublishRequest) -> PublishResult:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

    rig.publishers["webhook"] = Slow()  # type: ignore[assignment]
    rig.options = type(rig.options)(publish_timeout=0.01, retry=RetryPolicy(max_attempts=1))
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1), kinds=("webhook",))
    await rig.start()
    try:
        await rig.advance(1.01)
        assert [(a.outcome, a.error_code) for a in rig.store.attempts] == [
            ("transient", "timeout")]
        assert rig.store.posts["p1"].status == "failed"
    finally:
        await rig.stop()


async def test_a_dead_nodes_claim_is_taken_over_after_the_lease(rig: Rig) -> None:
    hubbub = rig.publisher("hubbub")
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.advance(1.01)
    # A node claims it and dies before publishing anything.
    [dead] = await rig.store.claim("dead-node", 10, rig.options.lease)
    await rig.start("node-b")
    await rig.advance(rig.options.lease - 1)
    assert hubbub.calls == []  # the lease still holds
    await rig.advance(1.01)
    assert [c.scheduled_post_id for c in hubbub.calls] == ["p1"]
    assert rig.store.posts["p1"].status == "published"
    assert rig.store.claims == [("dead-node", "p1"), ("node-b", "p1")]
    # The dead node's late writes are fenced out.
    late = rig.store.posts["p1"].targets[0]
    assert not await rig.store.finish(dead, [late], [], Settlement(status="published",
                                                                  at=rig.now()))


async def test_stop_hands_held_posts_back() -> None:
    rig = Rig()
    started = asyncio.Event()
    release = asyncio.Event()

    class Stuck:
        kind = "hubbub"

        async def publish(self, request: PublishRequest) -> PublishResult:
            started.set()
            await release.wait()
            return PublishResult(external_id="late")

    rig.publishers["hubbub"] = Stuck()  # type: ignore[assignment]
    rig.options = type(rig.options)(stop_timeout=0.01)
    rig.store.add("p1", author_id=A, scheduled_for=rig.at(1))
    await rig.start()
    rig.clock.advance(1.01)
    await asyncio.wait_for(started.wait(), 5)
    await rig.stop()
    post = rig.store.posts["p1"]
    assert post.status == "publishing" and post.claimed_by is None
    assert post.next_attempt_at is not None and post.next_attempt_at <= rig.now()
