"""The scheduler: one per node, every node running one, publishing each due post exactly once
in the whole cluster.

Loop: claim up to `batch_size` due posts (as many as there is room for: at most
`concurrency` rounds run at once), start a publishing round for each, and when nothing more
is due sleep until the next due time. No clock polling: the sleep ends at the earliest due
time the database knows of, or early when any node changes a schedule (ScheduleSignals,
Postgres LISTEN/NOTIFY), or after `tick` seconds as a safety net for a lost notification.

A round tries the post's due targets concurrently, each through the Publisher of its kind,
then in one transaction logs every attempt, stores the targets' new states and settles the
post (server.scheduling.state). Claims are leases renewed while a round runs; a node that
dies mid-round stops renewing, its posts fall due again when the lease ends, and another node
publishes them: targets already published are not tried again, and the others are idempotent
per (post, target) through `PublishRequest.idempotency_key`, so a publish the dead node had
half done is not repeated. Writes of a round whose claim was lost are refused by the store
(claim_seq fencing).

Priority: claims come in priority order (urgent, high, normal, low; oldest due first within a
priority), so under load urgent posts are taken, cluster-wide, before the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from actors.clock import Clock
from protocols.events import (
    EventData,
    EventEnvelope,
    PostFailed,
    PostPublished,
    RateLimitReached,
    ScheduledTargetResult,
    envelope,
)
from protocols.ids import new_id
from protocols.publishing import PublishFailed, PublishRequest
from protocols.schedule_records import ClaimedPost, Settlement, TargetState
from protocols.scheduling import PublishAttempt
from server.scheduling.backoff import RetryPolicy
from server.scheduling.ports import Publisher
from server.scheduling.state import Outcome, after_attempt, due_targets, settle
from server.scheduling.storage_ports import ClaimStore, ScheduleSignals

log = logging.getLogger("hubbub.scheduling.scheduler")

# Wake this much after a due time: the database must see the post as due when we ask.
_DUE_SLACK = 0.002
# When posts are due but another node's claim transaction holds them, look again this soon.
_CONTENDED_PAUSE = 0.05


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    batch_size: int = 50  # posts per claim at most
    concurrency: int = 8  # publishing rounds at once, per node
    lease: float = 30.0  # seconds a claim lasts unless renewed (renewed every lease / 3)
    tick: float = 30.0  # seconds: the longest sleep, whatever the next due time
    publish_timeout: float = 20.0  # seconds one Publisher.publish call may take
    stop_timeout: float = 10.0  # seconds running rounds get to finish at stop
    error_pause: float = 1.0  # seconds after a failed claim before trying again
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class _Tried:
    """One target tried in a round: its new state, the attempt's log entry, its events."""

    target: TargetState
    log: PublishAttempt
    events: list[EventEnvelope]


class SchedulerObserver:
    """Hooks for metrics; the default does nothing."""

    def attempted(self, kind: str, outcome: str) -> None:
        pass

    def settled(self, post: ClaimedPost, settlement: Settlement) -> None:
        pass


class Scheduler:
    def __init__(self, claims: ClaimStore, publishers: Mapping[str, Publisher], *,
                 node_id: str, clock: Clock, options: SchedulerOptions | None = None,
                 signals: ScheduleSignals | None = None, rng: random.Random | None = None,
                 observer: SchedulerObserver | None = None) -> None:
        self._claims = claims
        self._publishers = publishers  # read at each attempt: publishers added later count
        self.node_id = node_id
        self._clock = clock
        self.options = options or SchedulerOptions()
        self._signals = signals
        self._rng = rng or random.Random()
        self._observer = observer or SchedulerObserver()
        self._rounds: dict[str, tuple[ClaimedPost, asyncio.Task[None]]] = {}
        self._refill = max(1, min(self.options.batch_size, self.options.concurrency // 4))
        self._kicked = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop_task is not None:
            return
        self._stopping = False
        await self._listen()
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._run(), name="scheduler:loop")
        self._lease_task = loop.create_task(self._keep_leases(), name="scheduler:leases")

    async def stop(self) -> None:
        """Stop claiming, give running rounds `stop_timeout` seconds, cancel the rest, and
        hand every post still held back to the cluster (due again at once)."""
        self._stopping = True
        self._kick()
        for task in (self._loop_task, self._lease_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = self._lease_task = None
        running = [task for _, task in self._rounds.values()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.options.stop_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        try:
            released = await self._claims.release(self.node_id)
            if released:
                log.info("released %d scheduled posts at stop", released)
        except Exception:
            log.warning("could not release held scheduled posts; their leases will end",
                        exc_info=True)
        if self._signals is not None:
            await self._signals.close()

    def wake(self) -> None:
        """Look for due posts now (a schedule changed somewhere)."""
        self._kick()

    async def wait_idle(self) -> None:
        """Until the scheduler sleeps with no round running (tests)."""
        await self._idle.wait()

    @property
    def running_rounds(self) -> int:
        return len(self._rounds)

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._kicked.clear()
            if self._signals is not None and not self._signals.healthy():
                await self._listen()
            free = self.options.concurrency - len(self._rounds)
            if free <= 0 or (self._rounds and free < self._refill):
                # Under load, claim a few at a time rather than one per finished round: one
                # claim statement per post would cost the database more than the posts do.
                await self._pause(None)  # a round ending kicks us
                continue
            want = min(self.options.batch_size, free)
            try:
                posts = await self._claims.claim(self.node_id, want, self.options.lease)
                for post in posts:
                    self._start_round(post)
                if len(posts) == want:
                    continue  # more may be due
                delay = await self._claims.next_due_in()
            except Exception:
                log.exception("claiming scheduled posts failed; trying again")
                await self._pause(self.options.error_pause)
                continue
            if delay is None:
                await self._pause(self.options.tick)
            elif delay <= 0:
                # Due, yet we got none: another claim holds them this instant.
                await self._pause(_CONTENDED_PAUSE if not posts else 0)
            else:
                await self._pause(min(delay + _DUE_SLACK, self.options.tick))

    async def _pause(self, seconds: float | None) -> None:
        """Until kicked, or `seconds` passed (None: only a kick)."""
        if self._kicked.is_set():
            return
        if not self._rounds:
            self._idle.set()
        timer = self._clock.call_later(seconds, self._kick) if seconds is not None else None
        try:
            await self._kicked.wait()
        finally:
            if timer is not None:
                timer.cancel()

    def _kick(self) -> None:
        self._idle.clear()
        self._kicked.set()

    async def _listen(self) -> None:
        if self._signals is None:
            return
        try:
            await self._signals.listen(self.wake)
        except Exception:
            log.warning("cannot LISTEN for schedule changes; looking every %.0f s until then",
                        self.options.tick, exc_info=True)

    async def _keep_leases(self) -> None:
        every = self.options.lease / 3
        while True:
            await _clock_sleep(self._clock, every)
            held = [(post.id, post.claim_seq) for post, _ in self._rounds.values()]
            if not held:
                continue
            try:
                kept = await self._claims.renew(self.node_id, held, self.options.lease)
                if kept < len(held):
                    log.warning("%d scheduled posts were claimed away from this node",
                                len(held) - kept)
            except Exception:
                log.warning("renewing scheduler leases failed", exc_info=True)

    # -- a round ------------------------------------------------------------------------

    def _start_round(self, post: ClaimedPost) -> None:
        task = asyncio.get_running_loop().create_task(self._round(post),
                                                      name=f"scheduler:round:{post.id}")
        self._rounds[post.id] = (post, task)
        self._idle.clear()

        def done(_: asyncio.Task[None]) -> None:
            self._rounds.pop(post.id, None)
            self._kick()

        task.add_done_callback(done)

    async def _round(self, post: ClaimedPost) -> None:
        try:
            # Due as of the claim (the database's clock), never this node's: a node whose
            # clock lags would otherwise take a post and find nothing due in it, again and
            # again.
            due = due_targets(post.targets, post.due_at)
            tried = await asyncio.gather(*(self._attempt(post, t) for t in due))
            after = {attempt.target.index: attempt.target for attempt in tried}
            targets = [after.get(t.index, t) for t in post.targets]
            settlement = settle(targets, self._now())
            events = [event for attempt in tried for event in attempt.events]
            events += _settle_events(post, targets, settlement)
            if await self._claims.finish(post, list(after.values()),
                                         [attempt.log for attempt in tried], settlement,
                                         events):
                self._observer.settled(post, settlement)
            else:
                log.warning("lost the claim on scheduled post %s before it settled", post.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The claim stays until its lease ends; then any node takes the post again (its
            # targets are idempotent per (post, target)).
            log.exception("publishing round of scheduled post %s failed", post.id)

    async def _attempt(self, post: ClaimedPost, target: TargetState) -> _Tried:
        request = PublishRequest(
            scheduled_post_id=post.id, target_index=target.index, author_id=post.author_id,
            text=post.text, media_ids=list(post.media_ids), connection_id=target.connection_id,
            idempotency_key=f"{post.id}:{target.index}", attempt=target.attempts + 1)
        started = self._now()
        outcome = await self._publish(target.kind, request)
        finished = self._now()
        updated = after_attempt(target, outcome, finished, self.options.retry, self._rng)
        self._observer.attempted(target.kind, outcome.kind)
        retrying = outcome.kind == "transient" and updated.status == "pending"
        log_entry = PublishAttempt(
            id=new_id(), target_index=target.index, kind=target.kind,
            connection_id=target.connection_id, attempt=updated.attempts,
            node_id=self.node_id, started_at=started, finished_at=finished,
            outcome=outcome.kind, error_code=outcome.code, error=outcome.message,
            external_id=outcome.external_id,
            retry_at=updated.next_attempt_at if retrying else None)
        events = []
        if outcome.code == "rate_limited":
            reset = finished + timedelta(seconds=outcome.retry_after) \
                if outcome.retry_after else None
            events.append(_envelope(RateLimitReached(
                kind=target.kind, user_id=post.author_id, connection_id=target.connection_id,
                scheduled_post_id=post.id, reset_at=reset), post.author_id, finished))
        return _Tried(updated, log_entry, events)

    async def _publish(self, kind: str, request: PublishRequest) -> Outcome:
        publisher = self._publishers.get(kind)
        if publisher is None:
            return Outcome("transient", code="no_publisher",
                           message=f"no {kind} publisher is configured on this node")
        try:
            async with asyncio.timeout(self.options.publish_timeout):
                result = await publisher.publish(request)
        except PublishFailed as failed:
            return Outcome("permanent" if failed.permanent else "transient", code=failed.code,
                           message=failed.message, retry_after=failed.retry_after)
        except TimeoutError:
            return Outcome("transient", code="timeout",
                           message=f"no answer within {self.options.publish_timeout:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the port's contract: anything else is transient
            log.warning("%s publisher raised for scheduled post %s", kind,
                        request.scheduled_post_id, exc_info=True)
            return Outcome("transient", code="error", message=f"{type(exc).__name__}: {exc}")
        return Outcome("published", external_id=result.external_id, url=result.url)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)


def _settle_events(post: ClaimedPost, targets: Sequence[TargetState],
                   settlement: Settlement) -> list[EventEnvelope]:
    results = [ScheduledTargetResult(
        index=t.index, kind=t.kind, connection_id=t.connection_id, status=t.status,
        external_id=t.external_id, url=t.url, error_code=t.last_error_code,
        error=t.last_error) for t in targets]
    data: EventData
    if settlement.status == "published":
        data = PostPublished(scheduled_post_id=post.id, author_id=post.author_id,
                             post_id=settlement.post_id, scheduled_for=post.scheduled_for,
                             published_at=settlement.at, targets=results)
    elif settlement.status == "failed":
        data = PostFailed(scheduled_post_id=post.id, author_id=post.author_id,
                          post_id=settlement.post_id, failed_at=settlement.at,
                          error=settlement.last_error, targets=results)
    else:
        return []
    return [_envelope(data, post.author_id, settlement.at)]


def _envelope(data: EventData, actor_id: str, at: datetime) -> EventEnvelope:
    return envelope(data, actor_id=actor_id, occurred_at=at)


async def _clock_sleep(clock: Clock, seconds: float) -> None:
    """asyncio.sleep on the injected clock (a ManualClock sleeps until advanced)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = clock.call_later(seconds, wake)
    try:
        await done
    finally:
        timer.cancel()

