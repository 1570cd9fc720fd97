"""Reading scheduled posts, their targets and attempts out of Postgres rows (shared by
storage/postgres/scheduled_posts.py and schedule_claims.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from protocols.schedule_records import TargetState
from protocols.scheduling import PRIORITY_NAME, PublishAttempt, ScheduledPost, ScheduledTarget

# Schedulers LISTEN here; a change that makes a post due sooner NOTIFYs it on commit.
SCHEDULE_CHANNEL = "hubbub_scheduling"

POST_COLUMNS = """
p.id::text, p.author_id::text, p.text, p.media_ids::text[] AS media_ids, p.scheduled_for,
p.timezone, p.local_time, p.requested_local_time, p.resolution, p.priority, p.status,
p.post_id::text, p.next_attempt_at, p.claimed_by, p.claimed_until, p.claim_seq, p.last_error,
p.created_at, p.updated_at, p.publishing_at, p.published_at, p.failed_at, p.cancelled_at
"""
_TARGETS = """
SELECT scheduled_post_id::text AS post_id, position, kind, connection_id::text, status,
       attempts, next_attempt_at, external_id, url, last_error_code, last_error, published_at
FROM scheduled_post_targets WHERE scheduled_post_id = ANY($1::uuid[])
ORDER BY scheduled_post_id, position
"""
_ATTEMPTS = """
SELECT id::text, scheduled_post_id::text AS post_id, position, kind, connection_id::text,
       attempt, node_id, started_at, finished_at, outcome, error_code, error, external_id,
       retry_at
FROM scheduled_post_attempts WHERE scheduled_post_id = ANY($1::uuid[])
ORDER BY scheduled_post_id, id
"""

Conn = asyncpg.Connection | asyncpg.Pool


async def target_rows(conn: Conn, post_ids: Sequence[str]) -> dict[str, list[TargetState]]:
    """The targets of each post, in position order."""
    found: dict[str, list[TargetState]] = {post_id: [] for post_id in post_ids}
    for row in await conn.fetch(_TARGETS, list(post_ids)):
        found[row["post_id"]].append(TargetState(
            index=row["position"], kind=row["kind"], connection_id=row["connection_id"],
            status=row["status"], attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"], external_id=row["external_id"],
            url=row["url"], last_error_code=row["last_error_code"],
            last_error=row["last_error"], published_at=row["published_at"]))
    return found


async def hydrate(conn: Conn, rows: Sequence[Mapping[str, Any]]) -> list[ScheduledPost]:
    """The posts of `rows` (selected with POST_COLUMNS) with their targets, in row order."""
    targets = await target_rows(conn, [row["id"] for row in rows])
    return [scheduled_post(row, targets[row["id"]]) for row in rows]


def scheduled_post(row: Mapping[str, Any], targets: Sequence[TargetState]) -> ScheduledPost:
    requested = row["requested_local_time"]
    return ScheduledPost(
        id=row["id"], text=row["text"], media_ids=list(row["media_ids"]),
        scheduled_for=row["scheduled_for"], timezone=row["timezone"],
        local_time=row["local_time"].isoformat(), priority=PRIORITY_NAME[row["priority"]],
        targets=[_target(t) for t in targets], status=row["status"], post_id=row["post_id"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        published_at=row["published_at"], resolution=row["resolution"],
        requested_local_time=requested.isoformat() if requested is not None else None,
        next_attempt_at=row["next_attempt_at"], publishing_at=row["publishing_at"],
        failed_at=row["failed_at"], cancelled_at=row["cancelled_at"],
        last_error=row["last_error"])


def _target(state: TargetState) -> ScheduledTarget:
    return ScheduledTarget(
        kind=state.kind, connection_id=state.connection_id, status=state.status,
        attempts=state.attempts, last_error=state.last_error,
        last_error_code=state.last_error_code, external_id=state.external_id, url=state.url,
        next_attempt_at=state.next_attempt_at if state.status == "pending" else None,
        published_at=state.published_at)


async def attempt_rows(conn: Conn, post_ids: Sequence[str]) -> dict[str, list[PublishAttempt]]:
    found: dict[str, list[PublishAttempt]] = {post_id: [] for post_id in post_ids}
    for row in await conn.fetch(_ATTEMPTS, list(post_ids)):
        found[row["post_id"]].append(PublishAttempt(
            id=row["id"], target_index=row["position"], kind=row["kind"],
            connection_id=row["connection_id"], attempt=row["attempt"],
            node_id=row["node_id"], started_at=row["started_at"],
            finished_at=row["finished_at"], outcome=row["outcome"],
            error_code=row["error_code"], error=row["error"],
            external_id=row["external_id"], retry_at=row["retry_at"]))
    return found
