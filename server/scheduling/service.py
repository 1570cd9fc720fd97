"""The rules of scheduled posts as authors see them: schedule, list, read, edit, cancel,
publish now, the dead-letter queue and its retry.

Another author's post, or an id that is not one, is a 404 `scheduled_post_not_found`, never
a different status. Every change runs inside the author's schedule transaction
(ScheduleStore.author), which serialises one author's changes: the time rules
(server.scheduling.rules) are checked there, against the author's posts as committed, and the
change's event goes to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from actors.clock import Clock
from protocols.common import Page, PageQuery
from protocols.events import (
    EventData,
    EventEnvelope,
    PostCancelled,
    PostRescheduled,
    PostScheduled,
    envelope,
)
from protocols.ids import is_id, new_id
from protocols.problems import FieldError
from protocols.schedule_records import ScheduleDraft, ScheduleEdit, TargetDraft
from protocols.scheduling import (
    PRIORITY_RANK,
    DeadLetter,
    PublishAttempt,
    ScheduledPost,
    ScheduledPostCreate,
    ScheduledPostQuery,
    ScheduledPostUpdate,
)
from server.auth.principal import Principal
from server.http.cursors import TimeIdKey, decode_cursor, encode_cursor
from server.http.problems import NotFound, ValidationFailed
from server.scheduling import rules as schedule_rules
from server.scheduling.registry import PublishingRegistry
from server.scheduling.state import Action, ensure_allowed
from server.scheduling.storage_ports import AuthorSchedule, ScheduleStore
from server.scheduling.timezones import ResolvedTime, resolve, wall_time

# How far ahead a post may be scheduled.
MAX_AHEAD = timedelta(days=366)

# Raises ValidationFailed (422 `invalid_media`) unless every id is an upload of the user's
# that is ready: (user_id, media_ids).
MediaCheck = Callable[[str, Sequence[str]], Awaitable[None]]


class ScheduleService:
    def __init__(self, store: ScheduleStore, *, rules: schedule_rules.ScheduleRules,
                 clock: Clock, registry: PublishingRegistry,
                 media: MediaCheck | None = None) -> None:
        self._store = store
        self._rules = rules
        self._clock = clock
        self._registry = registry
        self._media = media

    async def create(self, caller: Principal, body: ScheduledPostCreate) -> ScheduledPost:
        """Schedule a post. 422 for a bad time, zone, target or upload; 409 when a rule
        refuses the time (with the next free slot)."""
        when = self._future(resolve(body.scheduled_for, body.timezone,
                                    nonexistent=body.nonexistent, ambiguous=body.ambiguous))
        targets = await self._registry.targets(caller.user_id, body.targets)
        media_ids = [m.lower() for m in body.media_ids]
        await self._check_media(caller.user_id, media_ids)
        draft = ScheduleDraft(
            id=new_id(), author_id=caller.user_id, text=body.text, media_ids=media_ids,
            scheduled_for=when.scheduled_for, timezone=when.timezone,
            local_time=when.local_time, requested_local_time=when.requested_local_time,
            resolution=when.resolution, priority=PRIORITY_RANK[body.priority],
            targets=targets)
        async with self._store.author(caller.user_id) as schedule:
            load = await schedule.load(when.scheduled_for - self._rules.lookback)
            schedule_rules.check(self._rules, load, when.scheduled_for, adding=True)
            await schedule.insert(draft)
            await schedule.emit(self._event(caller, PostScheduled(
                scheduled_post_id=draft.id, author_id=caller.user_id,
                scheduled_for=when.scheduled_for, timezone=when.timezone,
                priority=body.priority, target_kinds=[t.kind for t in targets])))
        return await self.get(caller, draft.id)

    async def get(self, caller: Principal, raw_id: str) -> ScheduledPost:
        post = await self._store.get(caller.user_id, _post_id(raw_id))
        if post is None:
            raise _not_found(raw_id)
        return post

    async def list(self, caller: Principal, query: ScheduledPostQuery) -> Page[ScheduledPost]:
        """Soonest first; filters by status and scheduled_for (from inclusive, to
        exclusive)."""
        after = decode_cursor(query.cursor, TimeIdKey) if query.cursor else None
        items = await self._store.page(
            caller.user_id, status=query.status, since=_utc(query.from_, "from"),
            until=_utc(query.to, "to"), limit=query.limit + 1, after=after)
        cursor = None
        if len(items) > query.limit:
            items = items[:query.limit]
            cursor = encode_cursor((items[-1].scheduled_for, items[-1].id))
        return Page(items=items, next_cursor=cursor)

    async def update(self, caller: Principal, raw_id: str,
                     body: ScheduledPostUpdate) -> ScheduledPost:
        """Edit or reschedule a scheduled post (409 `not_editable` in any other status)."""
        post_id = _post_id(raw_id)
        targets = None if body.targets is None \
            else await self._registry.targets(caller.user_id, body.targets)
        if body.media_ids is not None:
            await self._check_media(caller.user_id, [m.lower() for m in body.media_ids])
        async with self._store.author(caller.user_id) as schedule:
            current = await self._locked(schedule, raw_id, post_id, "edit")
            when = self._new_time(current, body)
            if when.scheduled_for != current.scheduled_for:
                load = await schedule.load(when.scheduled_for - self._rules.lookback,
                                           exclude_id=post_id)
                schedule_rules.check(self._rules, load, when.scheduled_for, adding=False)
            priority = body.priority or current.priority
            await schedule.edit(post_id, ScheduleEdit(
                text=body.text if body.text is not None else current.text,
                media_ids=[m.lower() for m in body.media_ids] if body.media_ids is not None
                else current.media_ids,
                scheduled_for=when.scheduled_for, timezone=when.timezone,
                local_time=when.local_time, requested_local_time=when.requested_local_time,
                resolution=when.resolution, priority=PRIORITY_RANK[priority],
                targets=targets if targets is not None else [
                    TargetDraft(kind=t.kind, connection_id=t.connection_id)
                    for t in current.targets]))
            if when.scheduled_for != current.scheduled_for or priority != current.priority:
                await schedule.emit(self._event(caller, PostRescheduled(
                    scheduled_post_id=post_id, author_id=caller.user_id,
                    scheduled_for=when.scheduled_for,
                    previous_scheduled_for=current.scheduled_for, timezone=when.timezone,
                    priority=priority)))
        return await self.get(caller, post_id)

    async def cancel(self, caller: Principal, raw_id: str) -> ScheduledPost:
        """Cancel a scheduled, failed, or retry-waiting post. Targets already published stay
        published."""
        post_id = _post_id(raw_id)
        async with self._store.author(caller.user_id) as schedule:
            await self._locked(schedule, raw_id, post_id, "cancel")
            at = self._now()
            await schedule.cancel(post_id, at)
            await schedule.emit(self._event(caller, PostCancelled(
                scheduled_post_id=post_id, author_id=caller.user_id, cancelled_at=at)))
        return await self.get(caller, post_id)

    async def publish_now(self, caller: Principal, raw_id: str) -> ScheduledPost:
        """Make a scheduled post due now: the schedulers take it at once. Not subject to the
        time rules (publishing now is an explicit decision)."""
        post_id = _post_id(raw_id)
        async with self._store.author(caller.user_id) as schedule:
            current = await self._locked(schedule, raw_id, post_id, "publish_now")
            at = self._now()
            await schedule.due_now(post_id, at, wall_time(at, current.timezone))
            await schedule.emit(self._event(caller, PostRescheduled(
                scheduled_post_id=post_id, author_id=caller.user_id, scheduled_for=at,
                previous_scheduled_for=current.scheduled_for, timezone=current.timezone,
                priority=current.priority)))
        return await self.get(caller, post_id)

    async def retry(self, caller: Principal, raw_id: str) -> ScheduledPost:
        """Send a failed post (dead letter) back to publishing: its failed targets get a new
        round of SCHEDULE_MAX_ATTEMPTS tries, starting now."""
        post_id = _post_id(raw_id)
        async with self._store.author(caller.user_id) as schedule:
            await self._locked(schedule, raw_id, post_id, "retry")
            await schedule.retry(post_id, self._now())
        return await self.get(caller, post_id)

    async def dead_letters(self, caller: Principal, query: PageQuery) -> Page[DeadLetter]:
        """Failed posts, most recently failed first, each with every attempt."""
        before = decode_cursor(query.cursor, TimeIdKey) if query.cursor else None
        posts = await self._store.dead_letters(caller.user_id, limit=query.limit + 1,
                                               before=before)
        cursor = None
        if len(posts) > query.limit:
            posts = posts[:query.limit]
            last = posts[-1]
            cursor = encode_cursor((last.failed_at or last.updated_at, last.id))
        attempts = await self._store.attempts([p.id for p in posts])
        return Page(items=[DeadLetter(scheduled_post=p, attempts=attempts[p.id])
                           for p in posts], next_cursor=cursor)

    async def attempts(self, caller: Principal, raw_id: str) -> list[PublishAttempt]:
        """Every publish attempt of one of the caller's posts, oldest first."""
        post = await self.get(caller, raw_id)
        return (await self._store.attempts([post.id]))[post.id]

    # -- helpers -------------------------------------------------------------------------

    async def _locked(self, schedule: AuthorSchedule, raw_id: str, post_id: str,
                      action: Action) -> ScheduledPost:
        locked = await schedule.lock(post_id)
        if locked is None:
            raise _not_found(raw_id)
        ensure_allowed(action, locked.post.status, claimed=locked.claimed)
        return locked.post

    def _new_time(self, current: ScheduledPost, body: ScheduledPostUpdate) -> ResolvedTime:
        """The time an edit asks for: a new scheduled_for (read in the new zone, if any);
        only a new zone (the wall time asked for, or shown, read in it); or none."""
        if body.scheduled_for is not None:
            return self._future(resolve(body.scheduled_for, body.timezone or current.timezone,
                                        nonexistent=body.nonexistent,
                                        ambiguous=body.ambiguous))
        if body.timezone is not None and body.timezone != current.timezone:
            wall = datetime.fromisoformat(current.requested_local_time or current.local_time)
            return self._future(resolve(wall, body.timezone, nonexistent=body.nonexistent,
                                        ambiguous=body.ambiguous))
        return ResolvedTime(
            current.scheduled_for, current.timezone,
            datetime.fromisoformat(current.local_time),
            datetime.fromisoformat(current.requested_local_time)
            if current.requested_local_time else None, current.resolution)

    def _future(self, when: ResolvedTime) -> ResolvedTime:
        now = self._now()
        if when.scheduled_for <= now:
            raise _invalid("scheduled_for", f"{_iso(when.scheduled_for)} is in the past (now "
                           f"{_iso(now)}); use POST .../publish to publish now",
                           "time_in_past")
        if when.scheduled_for > now + MAX_AHEAD:
            raise _invalid("scheduled_for", f"A post may be scheduled at most "
                           f"{MAX_AHEAD.days} days ahead", "too_far_ahead")
        return when

    async def _check_media(self, user_id: str, media_ids: Sequence[str]) -> None:
        if media_ids and self._media is not None:
            await self._media(user_id, media_ids)

    def _event(self, caller: Principal, data: EventData) -> EventEnvelope:
        return envelope(data, actor_id=caller.user_id, occurred_at=self._now())

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), UTC)


def _post_id(raw_id: str) -> str:
    if not is_id(raw_id):
        raise _not_found(raw_id)
    return raw_id.lower()


def _not_found(raw_id: str) -> NotFound:
    return NotFound(f"No scheduled post {raw_id!r}", code="scheduled_post_not_found")


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _invalid(field, "The time is out of range", "invalid") from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])
