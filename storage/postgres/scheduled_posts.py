"""Postgres adapter of server.scheduling.storage_ports.ScheduleStore: authors' scheduled
posts (create, edit, cancel, publish now, retry, lists and the dead-letter queue).

An author's changes run in one transaction holding a per-author advisory lock, so the rules
checked inside it (pending count, spacing, hourly and daily limits) cannot be raced past by
the author's other requests. A change that moves a due time NOTIFYs the schedulers on commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from protocols.events import EventEnvelope
from protocols.schedule_records import (
    LockedSchedule,
    ScheduleDraft,
    ScheduleEdit,
    ScheduleLoad,
    TargetDraft,
)
from protocols.scheduling import PublishAttempt, ScheduledPost, ScheduleStatus
from storage.postgres.outbox import append_events
from storage.postgres.schedule_rows import (
    POST_COLUMNS,
    SCHEDULE_CHANNEL,
    attempt_rows,
    hydrate,
)

# hashtextextended spreads authors over the 64-bit advisory key space; a collision only makes
# two authors wait for each other.
_AUTHOR_LOCK = ("SELECT pg_advisory_xact_lock(hashtextextended('hubbub.scheduling:' || $1, 0))")
_PENDING = """
SELECT count(*) FROM scheduled_posts
WHERE author_id = $1 AND status IN ('scheduled', 'publishing')
"""
_TIMES = """
SELECT scheduled_for FROM scheduled_posts
WHERE author_id = $1 AND status IN ('scheduled', 'publishing', 'published')
  AND scheduled_for >= $2 AND id IS DISTINCT FROM $3::uuid
ORDER BY scheduled_for
"""
_LOCK = f"""
SELECT {POST_COLUMNS},
       (p.status = 'publishing' AND p.claimed_until > now()) AS claimed
FROM scheduled_posts p WHERE p.id = $1 AND p.author_id = $2
FOR UPDATE
"""
_INSERT = """
INSERT INTO scheduled_posts (id, author_id, text, media_ids, scheduled_for, timezone,
                             local_time, requested_local_time, resolution, priority,
                             next_attempt_at)
VALUES ($1, $2, $3, $4::uuid[], $5, $6, $7, $8, $9, $10, $5)
"""
_INSERT_TARGETS = """
INSERT INTO scheduled_post_targets (scheduled_post_id, position, kind, connection_id)
SELECT $1, t.position, t.kind, t.connection_id
FROM unnest($2::smallint[], $3::text[], $4::uuid[]) AS t(position, kind, connection_id)
"""
_EDIT = """
UPDATE scheduled_posts SET text = $2, media_ids = $3::uuid[], scheduled_for = $4,
       timezone = $5, local_time = $6, requested_local_time = $7, resolution = $8,
       priority = $9, next_attempt_at = $4, updated_at = now()
WHERE id = $1
"""
_DUE_NOW = """
UPDATE scheduled_posts SET scheduled_for = $2, next_attempt_at = $2, local_time = $3,
       requested_local_time = NULL, resolution = 'exact', updated_at = now()
WHERE id = $1
"""
_CANCEL = """
UPDATE scheduled_posts SET status = 'cancelled', cancelled_at = $2, next_attempt_at = NULL,
       claimed_by = NULL, claimed_until = NULL, updated_at = now()
WHERE id = $1
"""
_CANCEL_TARGETS = """
UPDATE scheduled_post_targets SET status = 'cancelled', next_attempt_at = NULL,
       updated_at = now()
WHERE scheduled_post_id = $1 AND status IN ('pending', 'failed')
"""
_RETRY = """
UPDATE scheduled_posts SET status = 'publishing', next_attempt_at = $2, failed_at = NULL,
       claimed_by = NULL, claimed_until = NULL, updated_at = now()
WHERE id = $1
"""
_RETRY_TARGETS = """
UPDATE scheduled_post_targets SET status = 'pending', attempts = 0, next_attempt_at = NULL,
       updated_at = now()
WHERE scheduled_post_id = $1 AND status = 'failed'
"""
_GET = f"SELECT {POST_COLUMNS} FROM scheduled_posts p WHERE p.id = $1 AND p.author_id = $2"
_DEAD_LETTERS = f"""
SELECT {POST_COLUMNS} FROM scheduled_posts p
WHERE p.author_id = $1 AND p.status = 'failed'
  AND ($3::timestamptz IS NULL OR (p.failed_at, p.id) < ($3, $4::uuid))
ORDER BY p.failed_at DESC, p.id DESC
LIMIT $2
"""


class PostgresAuthorSchedule:
    """server.scheduling.storage_ports.AuthorSchedule on one open transaction."""

    def __init__(self, conn: asyncpg.Connection, author_id: str) -> None:
        self._conn = conn
        self._author_id = author_id
        self.changed = False  # anything the schedulers must hear about

    async def load(self, since: datetime, *, exclude_id: str | None = None) -> ScheduleLoad:
        pending = await self._conn.fetchval(_PENDING, self._author_id)
        rows = await self._conn.fetch(_TIMES, self._author_id, since, exclude_id)
        return ScheduleLoad(pending=pending, times=[row["scheduled_for"] for row in rows])

    async def lock(self, post_id: str) -> LockedSchedule | None:
        row = await self._conn.fetchrow(_LOCK, post_id, self._author_id)
        if row is None:
            return None
        [post] = await hydrate(self._conn, [row])
        return LockedSchedule(post=post, claimed=bool(row["claimed"]))

    async def insert(self, draft: ScheduleDraft) -> None:
        await self._conn.execute(
            _INSERT, draft.id, draft.author_id, draft.text, draft.media_ids,
            draft.scheduled_for, draft.timezone, draft.local_time, draft.requested_local_time,
            draft.resolution, draft.priority)
        await self._insert_targets(draft.id, draft.targets)
        self.changed = True

    async def edit(self, post_id: str, edit: ScheduleEdit) -> None:
        await self._conn.execute(
            _EDIT, post_id, edit.text, edit.media_ids, edit.scheduled_for, edit.timezone,
            edit.local_time, edit.requested_local_time, edit.resolution, edit.priority)
        await self._conn.execute(
            "DELETE FROM scheduled_post_targets WHERE scheduled_post_id = $1", post_id)
        await self._insert_targets(post_id, edit.targets)
        self.changed = True

    async def due_now(self, post_id: str, at: datetime, local_time: datetime) -> None:
        await self._conn.execute(_DUE_NOW, post_id, at, local_time)
        self.changed = True

    async def cancel(self, post_id: str, at: datetime) -> None:
        await self._conn.execute(_CANCEL, post_id, at)
        await self._conn.execute(_CANCEL_TARGETS, post_id)

    async def retry(self, post_id: str, at: datetime) -> None:
        await self._conn.execute(_RETRY, post_id, at)
        await self._conn.execute(_RETRY_TARGETS, post_id)
        self.changed = True

    async def emit(self, *events: EventEnvelope) -> None:
        await append_events(self._conn, *events)

    async def _insert_targets(self, post_id: str, targets: Sequence[TargetDraft]) -> None:
        await self._conn.execute(
            _INSERT_TARGETS, post_id, list(range(len(targets))), [t.kind for t in targets],
            [t.connection_id for t in targets])


class PostgresScheduleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def author(self, author_id: str) -> AsyncIterator[PostgresAuthorSchedule]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_AUTHOR_LOCK, author_id)
            schedule = PostgresAuthorSchedule(conn, author_id)
            yield schedule
            if schedule.changed:
                # Transactional: delivered on commit, dropped on rollback.
                await conn.execute(f"NOTIFY {SCHEDULE_CHANNEL}")

    async def get(self, author_id: str, post_id: str) -> ScheduledPost | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_GET, post_id, author_id)
            return (await hydrate(conn, [row]))[0] if row is not None else None

    async def page(self, author_id: str, *, status: ScheduleStatus | None,
                   since: datetime | None, until: datetime | None, limit: int,
                   after: tuple[datetime, str] | None) -> list[ScheduledPost]:
        where = ["p.author_id = $1"]
        args: list[object] = [author_id]

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if status is not None:
            where.append(f"p.status = {arg(status)}")
        if since is not None:
            where.append(f"p.scheduled_for >= {arg(since)}")
        if until is not None:
            where.append(f"p.scheduled_for < {arg(until)}")
        if after is not None:
            where.append(f"(p.scheduled_for, p.id) > ({arg(after[0])}, {arg(after[1])}::uuid)")
        sql = (f"SELECT {POST_COLUMNS} FROM scheduled_posts p WHERE {' AND '.join(where)}"
               f" ORDER BY p.scheduled_for, p.id LIMIT {arg(limit)}")
        async with self._pool.acquire() as conn:
            return await hydrate(conn, await conn.fetch(sql, *args))

    async def dead_letters(self, author_id: str, *, limit: int,
                           before: tuple[datetime, str] | None) -> list[ScheduledPost]:
        at, post_id = before if before is not None else (None, None)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_DEAD_LETTERS, author_id, limit, at, post_id)
            return await hydrate(conn, rows)

    async def attempts(self, post_ids: Sequence[str]) -> dict[str, list[PublishAttempt]]:
        return await attempt_rows(self._pool, post_ids)
