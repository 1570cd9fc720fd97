"""In-memory twin of storage/postgres/schedule_claims.py (the ClaimStore of
server.scheduling.storage_ports), on an injected clock, for the scheduler's unit tests and
simulations. Same contract: priority order, leases, claim_seq fencing. Each method runs
without awaiting, so on one event loop every call is atomic, as one statement is in Postgres.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from protocols.events import EventEnvelope
from protocols.publishing import TargetKind
from protocols.schedule_records import ClaimedPost, Settlement, TargetState
from protocols.scheduling import PublishAttempt, ScheduleStatus


@dataclass
class MemoryScheduledPost:
    id: str
    author_id: str
    text: str
    scheduled_for: datetime
    priority: int
    targets: list[TargetState]
    media_ids: list[str] = field(default_factory=list)
    status: ScheduleStatus = "scheduled"
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    claim_seq: int = 0
    rounds: int = 0
    post_id: str | None = None
    last_error: str | None = None
    published_at: datetime | None = None
    failed_at: datetime | None = None


class MemoryClaimStore:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.posts: dict[str, MemoryScheduledPost] = {}
        self.attempts: list[PublishAttempt] = []
        self.events: list[EventEnvelope] = []
        self.claims: list[tuple[str, str]] = []  # (node, post id), in claim order

    # -- test set-up and inspection ------------------------------------------------------

    def add(self, post_id: str, *, author_id: str, scheduled_for: datetime, priority: int = 2,
            kinds: Sequence[TargetKind] = ("hubbub",), text: str = "scheduled") -> None:
        targets = [TargetState(index=i, kind=kind) for i, kind in enumerate(kinds)]
        self.posts[post_id] = MemoryScheduledPost(
            id=post_id, author_id=author_id, text=text, scheduled_for=scheduled_for,
            priority=priority, targets=targets, next_attempt_at=scheduled_for)

    def time(self) -> datetime:
        return datetime.fromtimestamp(self._now(), UTC)

    # -- ClaimStore ------------------------------------------------------------------------

    async def claim(self, node_id: str, limit: int, lease: float) -> list[ClaimedPost]:
        now = self.time()
        due = sorted((p for p in self.posts.values()
                      if p.status in ("scheduled", "publishing")
                      and p.next_attempt_at is not None and p.next_attempt_at <= now),
                     key=lambda p: (p.priority, p.next_attempt_at, p.id))[:limit]
        claimed = []
        for post in due:
            due_at = post.next_attempt_at
            assert due_at is not None
            until = now + timedelta(seconds=lease)
            post.status, post.claimed_by, post.claimed_until = "publishing", node_id, until
            post.next_attempt_at = until
            post.claim_seq += 1
            post.rounds += 1
            self.claims.append((node_id, post.id))
            claimed.append(ClaimedPost(
                id=post.id, author_id=post.author_id, text=post.text,
                media_ids=list(post.media_ids), priority=post.priority,
                scheduled_for=post.scheduled_for, due_at=due_at, claim_seq=post.claim_seq,
                node_id=node_id, targets=list(post.targets)))
        return claimed

    async def renew(self, node_id: str, claims: Sequence[tuple[str, int]],
                    lease: float) -> int:
        until = self.time() + timedelta(seconds=lease)
        kept = 0
        for post_id, claim_seq in claims:
            post = self.posts.get(post_id)
            if post is not None and self._holds(post, claim_seq, node_id):
                post.claimed_until = post.next_attempt_at = until
                kept += 1
        return kept

    async def finish(self, post: ClaimedPost, targets: Sequence[TargetState],
                     attempts: Sequence[PublishAttempt], settlement: Settlement,
                     events: Sequence[EventEnvelope] = ()) -> bool:
        self.attempts.extend(attempts)
        row = self.posts.get(post.id)
        if row is None or not self._holds(row, post.claim_seq, post.node_id):
            return False
        tried = {t.index: t for t in targets}
        row.targets = [tried.get(t.index, t) for t in row.targets]
        row.status = settlement.status
        row.next_attempt_at = settlement.next_attempt_at
        row.post_id = settlement.post_id or row.post_id
        row.last_error = settlement.last_error
        if settlement.status == "published":
            row.published_at = settlement.at
        elif settlement.status == "failed":
            row.failed_at = settlement.at
        row.claimed_by = row.claimed_until = None
        self.events.extend(events)
        return True

    async def release(self, node_id: str) -> int:
        released = 0
        for post in self.posts.values():
            if post.claimed_by == node_id and post.status == "publishing":
                post.claimed_by = post.claimed_until = None
                post.next_attempt_at = self.time()
                released += 1
        return released

    async def next_due_in(self) -> float | None:
        due = [p.next_attempt_at for p in self.posts.values()
               if p.status in ("scheduled", "publishing") and p.next_attempt_at is not None]
        return (min(due) - self.time()).total_seconds() if due else None

    async def emit(self, *events: EventEnvelope) -> None:
        self.events.extend(events)

    # -- helpers -------------------------------------------------------------------------

    def retry(self, post_id: str) -> None:
        """What AuthorSchedule.retry does to a failed post (dead-letter retry)."""
        post = self.posts[post_id]
        post.status, post.next_attempt_at, post.failed_at = "publishing", self.time(), None
        post.targets = [msgspec.structs.replace(t, status="pending", attempts=0,
                                                next_attempt_at=None)
                        if t.status == "failed" else t for t in post.targets]

    @staticmethod
    def _holds(post: MemoryScheduledPost, claim_seq: int, node_id: str) -> bool:
        return (post.claim_seq == claim_seq and post.claimed_by == node_id
                and post.status == "publishing")
