"""Records the scheduling ports exchange with their storage adapters. Never on the wire.

They live in protocols because storage may import only protocols. Ids are canonical
lowercase UUID strings the caller has already checked; times are timezone-aware UTC, except
the wall times (`local_time`, `requested_local_time`), which are naive on purpose: they are
read in the post's `timezone`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from protocols.publishing import TargetKind
from protocols.scheduling import Resolution, ScheduledPost, TargetStatus


class TargetDraft(msgspec.Struct, frozen=True, kw_only=True):
    kind: TargetKind
    connection_id: str | None = None


class ScheduleDraft(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled post to insert, its time already resolved (server.scheduling.timezones)."""

    id: str
    author_id: str
    text: str
    media_ids: list[str]
    scheduled_for: datetime
    timezone: str
    local_time: datetime  # naive wall time in `timezone`
    requested_local_time: datetime | None  # naive; None when an instant was given
    resolution: Resolution
    priority: int  # protocols.scheduling.PRIORITY_RANK
    targets: list[TargetDraft]


class ScheduleEdit(msgspec.Struct, frozen=True, kw_only=True):
    """The new values of an edited scheduled post (every field is written; targets replace
    the old ones, all pending). `next_attempt_at` follows `scheduled_for`."""

    text: str
    media_ids: list[str]
    scheduled_for: datetime
    timezone: str
    local_time: datetime
    requested_local_time: datetime | None
    resolution: Resolution
    priority: int
    targets: list[TargetDraft]


class LockedSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled post read under its row lock, and whether a scheduler holds it right now
    (status publishing with a live claim)."""

    post: ScheduledPost
    claimed: bool


class ScheduleLoad(msgspec.Struct, frozen=True, kw_only=True):
    """What the scheduling rules look at, for one author: how many posts wait (scheduled or
    publishing), and the scheduled_for of every post that is scheduled, publishing or
    published within the asked window."""

    pending: int
    times: list[datetime]


class TargetState(msgspec.Struct, frozen=True, kw_only=True):
    """One target of a claimed post, as stored (the scheduler's working copy)."""

    index: int
    kind: TargetKind
    connection_id: str | None = None
    status: TargetStatus = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None  # None: due with the post
    external_id: str | None = None
    url: str | None = None
    last_error_code: str | None = None
    last_error: str | None = None
    published_at: datetime | None = None


class ClaimedPost(msgspec.Struct, frozen=True, kw_only=True):
    """A due post this node now holds. `claim_seq` fences every write of this round: once
    another node has claimed the post again (our lease ran out), our writes are refused."""

    id: str
    author_id: str
    text: str
    media_ids: list[str]
    priority: int
    scheduled_for: datetime
    due_at: datetime  # the next_attempt_at it was claimed at
    claim_seq: int
    node_id: str
    targets: list[TargetState]


SettledStatus = Literal["published", "failed", "publishing"]


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """How a round ended. published: every target is; failed: none is pending and one
    failed; publishing: some target waits for a retry at `next_attempt_at` (the claim is
    released so any node may take it then)."""

    status: SettledStatus
    at: datetime
    next_attempt_at: datetime | None = None
    post_id: str | None = None  # the Hubbub post, when the hubbub target is published
    last_error: str | None = None
