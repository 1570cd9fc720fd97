"""The storage ports of scheduling: the authors' side (REST) and the scheduler's side.

Postgres adapters: storage/postgres/scheduled_posts.py (ScheduleStore),
storage/postgres/schedule_claims.py (ClaimStore), storage/postgres/schedule_listener.py
(ScheduleSignals). In memory: storage/memory/schedule_claims.py (ClaimStore, for the
scheduler's unit tests).

Shared rules: every read and change by an author is scoped to that author (another author's
post is "not there"); every change that a scheduler must notice wakes the schedulers of every
node (ScheduleSignals); events given to a method are appended to the outbox in the same
transaction as the change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from protocols.events import EventEnvelope
from protocols.schedule_records import (
    ClaimedPost,
    LockedSchedule,
    ScheduleDraft,
    ScheduleEdit,
    ScheduleLoad,
    Settlement,
    TargetState,
)
from protocols.scheduling import PublishAttempt, ScheduledPost, ScheduleStatus


class AuthorSchedule(Protocol):
    """One author's scheduled posts inside one transaction that holds the author's lock:
    changes by the same author are serialised, so rules checked here cannot be raced past.
    Committed when the `ScheduleStore.author` block exits normally, rolled back when it
    raises."""

    async def load(self, since: datetime, *, exclude_id: str | None = None) -> ScheduleLoad:
        """The rules' view: the waiting count and the scheduled_for of the author's
        scheduled, publishing and published posts at or after `since` (leaving out
        `exclude_id`)."""
        ...

    async def lock(self, post_id: str) -> LockedSchedule | None:
        """The author's post, its row locked until the end of the transaction; None when
        the author has no such post."""
        ...

    async def insert(self, draft: ScheduleDraft) -> None:
        """Insert the post (status scheduled, due at scheduled_for) and its targets."""
        ...

    async def edit(self, post_id: str, edit: ScheduleEdit) -> None:
        """Overwrite a scheduled post's content, time, priority and targets (all pending)."""
        ...

    async def due_now(self, post_id: str, at: datetime, local_time: datetime) -> None:
        """A scheduled post becomes due at `at` (publish now): scheduled_for, the wall time
        and the due time move there, resolution "exact"."""
        ...

    async def cancel(self, post_id: str, at: datetime) -> None:
        """Status cancelled at `at`; pending and failed targets become cancelled; no longer
        due."""
        ...

    async def retry(self, post_id: str, at: datetime) -> None:
        """A failed post goes back to publishing, due at `at`, unclaimed; its failed targets
        become pending again with no attempts (a new round)."""
        ...

    async def emit(self, *events: EventEnvelope) -> None:
        """Append events to the outbox with this transaction."""
        ...


class ScheduleStore(Protocol):
    def author(self, author_id: str) -> AbstractAsyncContextManager[AuthorSchedule]:
        """A transaction over the author's schedule (see AuthorSchedule). Wakes the
        schedulers on commit when it changed anything they look at."""
        ...

    async def get(self, author_id: str, post_id: str) -> ScheduledPost | None:
        ...

    async def page(self, author_id: str, *, status: ScheduleStatus | None,
                   since: datetime | None, until: datetime | None, limit: int,
                   after: tuple[datetime, str] | None) -> list[ScheduledPost]:
        """The author's posts with since <= scheduled_for < until (each bound optional),
        soonest first ((scheduled_for, id) ascending), strictly after `after`, at most
        `limit`."""
        ...

    async def dead_letters(self, author_id: str, *, limit: int,
                           before: tuple[datetime, str] | None) -> list[ScheduledPost]:
        """The author's failed posts, most recently failed first ((failed_at, id)
        descending), strictly before `before`, at most `limit`."""
        ...

    async def attempts(self, post_ids: Sequence[str]) -> dict[str, list[PublishAttempt]]:
        """Every publish attempt of each post, oldest first. The caller has checked that
        the posts are the author's."""
        ...


class ClaimStore(Protocol):
    """The scheduler's side. Every write about a claimed post is fenced by
    (post id, claim_seq, node id): it is refused (returns False) once the post was claimed
    again by anyone, so a node whose lease ran out cannot overwrite the new holder's work."""

    async def claim(self, node_id: str, limit: int, lease: float) -> list[ClaimedPost]:
        """Take up to `limit` due posts (scheduled or publishing, due time passed: a post
        waiting for a retry, or one whose holder's lease ran out), in priority order
        (urgent first) and oldest due time first within a priority; skip posts another
        transaction has locked (FOR UPDATE SKIP LOCKED: concurrent claimers never take the
        same post). Each becomes publishing, held by `node_id` for `lease` seconds (its due
        time moves to the lease's end, so a dead holder's post falls due again), with a new
        claim_seq."""
        ...

    async def renew(self, node_id: str, claims: Sequence[tuple[str, int]],
                    lease: float) -> int:
        """Extend the lease of the given (post id, claim_seq) held by `node_id`; returns how
        many were still ours."""
        ...

    async def finish(self, post: ClaimedPost, targets: Sequence[TargetState],
                     attempts: Sequence[PublishAttempt], settlement: Settlement,
                     events: Sequence[EventEnvelope] = ()) -> bool:
        """End a round in one transaction: log its `attempts` (always: they happened) and,
        when the claim still holds, store the tried `targets`' new states, settle the post
        (status, due time, post_id, last error per `settlement`; the claim released) and
        append `events`. False when the claim was lost (nothing but the log written)."""
        ...

    async def release(self, node_id: str) -> int:
        """Let go of every post `node_id` holds (shutting down): due again at once, for any
        node. Returns how many."""
        ...

    async def next_due_in(self) -> float | None:
        """Seconds until the earliest due time of any post (<= 0 when one is due already);
        None when nothing is scheduled or publishing."""
        ...

    async def emit(self, *events: EventEnvelope) -> None:
        """Append events to the outbox on their own (rate_limit.reached reported by a
        publisher outside an attempt)."""
        ...


class ScheduleSignals(Protocol):
    """Cluster-wide wake-ups: `notify` after a change the schedulers must see (the
    ScheduleStore does it itself on commit), `listen` to hear every node's. Delivery is best
    effort: schedulers still look on their own every SCHEDULER_TICK_SECONDS."""

    async def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop; it must not block) on every wake-up from now
        on, until `close()`. Raises when the listening connection cannot be set up (the
        caller retries)."""
        ...

    def healthy(self) -> bool:
        """False once the listening connection was lost (listen again)."""
        ...

    async def close(self) -> None:
        ...
