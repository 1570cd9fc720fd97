"""Scheduled post shapes (contract, ../shared/API.md "Scheduling"): what clients send to
schedule, edit and list posts, and what they get back, including the dead-letter queue.

Times: `scheduled_for` in a response is UTC; `local_time` is the same instant on the wall
clock of `timezone`. A request may give `scheduled_for` as an instant with an offset
("2026-03-08T14:30:00+01:00", "...Z") or as a local wall time without one
("2026-03-08T02:30:00") together with an IANA `timezone`. A wall time that a daylight-saving
change skips (a gap) or repeats (an overlap) is resolved by `nonexistent` / `ambiguous` and
the response says how in `resolution`: never a silent shift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound
from protocols.common import PageQuery
from protocols.posts import MAX_MEDIA_PER_POST, EntityId, PostText
from protocols.problems import Problem
from protocols.publishing import TargetKind

Priority = Literal["urgent", "high", "normal", "low"]
# Claim order: the scheduler takes urgent before high before normal before low.
PRIORITY_RANK: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
PRIORITY_NAME: dict[int, Priority] = {0: "urgent", 1: "high", 2: "normal", 3: "low"}

ScheduleStatus = Literal["scheduled", "publishing", "published", "failed", "cancelled"]
# pending: not published yet (due, or waiting for a retry); the others are final for a round.
TargetStatus = Literal["pending", "published", "failed", "cancelled"]
# How the requested time became `scheduled_for`: "exact" (an instant, or a wall time that
# exists once), "shifted_forward" (a wall time inside a DST gap, moved forward by the gap's
# length: 02:30 on a spring-forward night becomes 03:30), "earlier_of_two" / "later_of_two"
# (a wall time a fall-back night repeats: its first or second occurrence).
Resolution = Literal["exact", "shifted_forward", "earlier_of_two", "later_of_two"]
# For a wall time inside a DST gap: shift it forward by the gap, or refuse it (422
# `nonexistent_local_time`).
Nonexistent = Literal["shift_forward", "reject"]
# For a wall time a DST overlap repeats: take its first or second occurrence, or refuse it
# (422 `ambiguous_local_time`).
Ambiguous = Literal["earlier", "later", "reject"]

MAX_TARGETS = 10

TimeZoneName = fields.pattern(
    r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$(?!\n)",
    "must be an IANA time zone name such as Europe/Paris or UTC", max_length=64,
    description="An IANA time zone name (Europe/Paris, America/New_York, UTC)")
RequestedTime = Annotated[datetime, msgspec.Meta(
    description="An instant with an offset (2026-03-08T14:30:00+01:00, ...Z), or a local wall "
    "time without one (2026-03-08T02:30:00), read in `timezone`")]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
MediaIds = Annotated[list[EntityId], msgspec.Meta(max_length=MAX_MEDIA_PER_POST)]


class TargetSpec(Inbound, kw_only=True):
    """Where to publish: `hubbub` (this network; no connection_id), or `webhook` / `x`
    through one of your connections (GET /v1/publishing/connections)."""

    kind: TargetKind
    connection_id: EntityId | None = None


Targets = Annotated[list[TargetSpec], msgspec.Meta(min_length=1, max_length=MAX_TARGETS)]


class ScheduledPostCreate(Inbound, kw_only=True):
    """`POST /v1/scheduled_posts`. `timezone` is required when `scheduled_for` has no offset;
    with an offset it only says in which zone `local_time` is shown (UTC when left out).
    targets: default [{"kind": "hubbub"}]."""

    text: PostText
    media_ids: MediaIds = []
    scheduled_for: RequestedTime
    timezone: TimeZoneName | None = None
    priority: Priority = "normal"
    targets: Targets | None = None
    nonexistent: Nonexistent = "shift_forward"
    ambiguous: Ambiguous = "earlier"


class ScheduledPostUpdate(Inbound, kw_only=True):
    """`PATCH /v1/scheduled_posts/{id}`: only while `scheduled`; every field is optional and
    what is left out stays. A new `timezone` without `scheduled_for` re-reads the post's wall
    time in that zone."""

    text: PostText | None = None
    media_ids: MediaIds | None = None
    scheduled_for: RequestedTime | None = None
    timezone: TimeZoneName | None = None
    priority: Priority | None = None
    targets: Targets | None = None
    nonexistent: Nonexistent = "shift_forward"
    ambiguous: Ambiguous = "earlier"


class ScheduledTarget(Outbound, kw_only=True):
    """One target of a scheduled post; each succeeds or fails on its own."""

    kind: TargetKind
    connection_id: str | None = None
    status: TargetStatus
    attempts: int  # publish attempts in the current round (reset by a retry from dead letters)
    last_error: str | None = None
    last_error_code: str | None = None
    external_id: str | None = None  # where it now lives: the Hubbub post id, the X post id...
    url: str | None = None
    next_attempt_at: datetime | None = None  # pending: when it is (re)tried
    published_at: datetime | None = None


class ScheduledPost(Outbound, kw_only=True):
    id: str
    text: str
    media_ids: list[str]
    scheduled_for: datetime  # UTC
    timezone: str
    local_time: str  # wall time in `timezone`, ISO 8601 without offset
    priority: Priority
    targets: list[ScheduledTarget]
    status: ScheduleStatus
    post_id: str | None = None  # the Hubbub post, once the `hubbub` target is published
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None
    resolution: Resolution = "exact"
    requested_local_time: str | None = None  # the wall time asked for, when one was given
    next_attempt_at: datetime | None = None  # scheduled/publishing: when the scheduler acts
    publishing_at: datetime | None = None  # first taken by the scheduler
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    last_error: str | None = None


class ScheduledPostQuery(PageQuery, kw_only=True):
    """`GET /v1/scheduled_posts`: soonest first (by scheduled_for). `from` inclusive, `to`
    exclusive, both compared with scheduled_for."""

    status: ScheduleStatus | None = None
    from_: Timestamp | None = msgspec.field(default=None, name="from")
    to: Timestamp | None = None


AttemptOutcome = Literal["published", "transient", "permanent"]


class PublishAttempt(Outbound, kw_only=True):
    """One try at publishing one target: when, where, and what came of it."""

    id: str
    target_index: int  # position in `targets`
    kind: TargetKind
    connection_id: str | None = None
    attempt: int  # 1, 2, ... within its round
    node_id: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    error_code: str | None = None
    error: str | None = None
    external_id: str | None = None
    retry_at: datetime | None = None  # transient: when the next try was scheduled


class DeadLetter(Outbound, kw_only=True):
    """A failed scheduled post in the dead-letter queue, with every attempt, oldest first.
    POST .../retry publishes its failed targets again; DELETE cancels it."""

    scheduled_post: ScheduledPost
    attempts: list[PublishAttempt]


class ScheduleConflictProblem(Problem, kw_only=True):
    """The 409 of a scheduling rule (RFC 9457 extension members): `code` names the rule
    (schedule_pending_limit, schedule_min_interval, schedule_hourly_limit,
    schedule_daily_limit) and `next_free_slot` is the earliest time at or after the requested
    one that no rule refuses (null for the pending limit: no time helps there)."""

    next_free_slot: datetime | None = None
