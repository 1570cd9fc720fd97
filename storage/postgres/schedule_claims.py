"""Postgres adapter of server.scheduling.storage_ports.ClaimStore: the schedulers' side.

Claiming is the classic queue pattern: select due rows in priority order `FOR UPDATE SKIP
LOCKED` and mark them taken in the same statement, so schedulers on any number of nodes never
take the same post at once, and none waits for another's locks. A claim is a lease: the due
time moves to the lease's end, so when the holder dies its post simply falls due again and
any node claims it, with a new claim_seq that fences the dead holder's late writes out.

All times come from the database clock (`now()`), so nodes with skewed clocks agree on what
is due.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from protocols.events import EventEnvelope
from protocols.ids import is_id
from protocols.schedule_records import ClaimedPost, Settlement, TargetState
from protocols.scheduling import PublishAttempt
from storage.postgres.outbox import append_events
from storage.postgres.schedule_rows import SCHEDULE_CHANNEL, target_rows

# Priority by priority (the VALUES list is scanned in order and the outer LIMIT stops the
# nested loop as soon as it has enough), each an ordered range scan of the claim index: the
# statement reads only the rows it takes. Rows are locked as they are read, so nothing is
# locked that is not claimed.
_CLAIM = """
WITH due AS (
    SELECT d.id, d.next_attempt_at
    FROM (VALUES (0::smallint), (1::smallint), (2::smallint), (3::smallint)) AS p(priority)
    CROSS JOIN LATERAL (
        SELECT s.id, s.next_attempt_at FROM scheduled_posts s
        WHERE s.status IN ('scheduled', 'publishing') AND s.priority = p.priority
          AND s.next_attempt_at <= now()
        ORDER BY s.next_attempt_at, s.id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ) d
    LIMIT $2
)
UPDATE scheduled_posts p
SET status = 'publishing', claimed_by = $1,
    claimed_until = now() + make_interval(secs => $3),
    next_attempt_at = now() + make_interval(secs => $3),
    claim_seq = p.claim_seq + 1, rounds = p.rounds + 1,
    publishing_at = COALESCE(p.publishing_at, now()), updated_at = now()
FROM due WHERE p.id = due.id
RETURNING p.id::text, p.author_id::text, p.text, p.media_ids::text[] AS media_ids, p.priority,
          p.scheduled_for, due.next_attempt_at AS due_at, p.claim_seq
"""
_RENEW = """
UPDATE scheduled_posts p
SET claimed_until = now() + make_interval(secs => $4),
    next_attempt_at = now() + make_interval(secs => $4)
FROM unnest($2::uuid[], $3::bigint[]) AS c(id, claim_seq)
WHERE p.id = c.id AND p.claim_seq = c.claim_seq AND p.claimed_by = $1
  AND p.status = 'publishing'
"""
# The fence, for a post held as ($1 id, $2 claim_seq, $3 node).
_HELD = """
SELECT 1 FROM scheduled_posts
WHERE id = $1 AND claim_seq = $2 AND claimed_by = $3 AND status = 'publishing'
FOR NO KEY UPDATE
"""
# Unless the post is gone (its author was deleted meanwhile).
_LOG_ATTEMPT = """
INSERT INTO scheduled_post_attempts (id, scheduled_post_id, position, kind, connection_id,
    attempt, node_id, started_at, finished_at, outcome, error_code, error, external_id,
    retry_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
WHERE EXISTS (SELECT 1 FROM scheduled_posts WHERE id = $2)
"""
_TARGET = """
UPDATE scheduled_post_targets
SET status = $3, attempts = $4, next_attempt_at = $5, external_id = $6, url = $7,
    last_error_code = $8, last_error = $9, published_at = $10, updated_at = now()
WHERE scheduled_post_id = $1 AND position = $2
"""
_SETTLE = """
UPDATE scheduled_posts
SET status = $4, next_attempt_at = $5, last_error = $7,
    -- The Hubbub post, when it (still) exists: a dangling id must not fail the round.
    post_id = COALESCE((SELECT id FROM posts WHERE id = $6::uuid), post_id),
    published_at = CASE WHEN $4 = 'published' THEN $8 ELSE published_at END,
    failed_at = CASE WHEN $4 = 'failed' THEN $8 ELSE failed_at END,
    claimed_by = NULL, claimed_until = NULL, updated_at = now()
WHERE id = $1 AND claim_seq = $2 AND claimed_by = $3 AND status = 'publishing'
"""
_RELEASE = """
UPDATE scheduled_posts
SET claimed_by = NULL, claimed_until = NULL, next_attempt_at = now(), updated_at = now()
WHERE claimed_by = $1 AND status = 'publishing'
"""
_NEXT_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8
FROM scheduled_posts WHERE status IN ('scheduled', 'publishing')
"""


class PostgresClaimStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, node_id: str, limit: int, lease: float) -> list[ClaimedPost]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, node_id, limit, float(lease))
            if not rows:
                return []
            targets = await target_rows(conn, [row["id"] for row in rows])
        claimed = [ClaimedPost(
            id=row["id"], author_id=row["author_id"], text=row["text"],
            media_ids=list(row["media_ids"]), priority=row["priority"],
            scheduled_for=row["scheduled_for"], due_at=row["due_at"],
            claim_seq=row["claim_seq"], node_id=node_id, targets=targets[row["id"]])
            for row in rows]
        # UPDATE ... RETURNING does not keep the CTE's order.
        claimed.sort(key=lambda p: (p.priority, p.due_at, p.id))
        return claimed

    async def renew(self, node_id: str, claims: Sequence[tuple[str, int]],
                    lease: float) -> int:
        if not claims:
            return 0
        status = await self._pool.execute(
            _RENEW, node_id, [c[0] for c in claims], [c[1] for c in claims], float(lease))
        return int(status.split()[-1])

    async def finish(self, post: ClaimedPost, targets: Sequence[TargetState],
                     attempts: Sequence[PublishAttempt], settlement: Settlement,
                     events: Sequence[EventEnvelope] = ()) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            # The post row first: the attempts' foreign key takes a share lock on it, and
            # upgrading from that to this lock could deadlock with another transaction.
            held = await conn.fetchval(_HELD, post.id, post.claim_seq, post.node_id)
            await conn.executemany(_LOG_ATTEMPT, [(
                a.id, post.id, a.target_index, a.kind, a.connection_id, a.attempt, a.node_id,
                a.started_at, a.finished_at, a.outcome, a.error_code, a.error, a.external_id,
                a.retry_at) for a in attempts])
            if held is None:
                return False
            await conn.executemany(_TARGET, [(
                post.id, t.index, t.status, t.attempts, t.next_attempt_at, t.external_id,
                t.url, t.last_error_code, t.last_error, t.published_at) for t in targets])
            await conn.execute(
                _SETTLE, post.id, post.claim_seq, post.node_id, settlement.status,
                settlement.next_attempt_at,
                settlement.post_id if settlement.post_id and is_id(settlement.post_id)
                else None, settlement.last_error, settlement.at)
            await append_events(conn, *events)
            if settlement.status == "publishing":  # a retry time other nodes may sleep past
                await conn.execute(f"NOTIFY {SCHEDULE_CHANNEL}")
            return True

    async def release(self, node_id: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(_RELEASE, node_id)
            released = int(status.split()[-1])
            if released:
                await conn.execute(f"NOTIFY {SCHEDULE_CHANNEL}")
        return released

    async def next_due_in(self) -> float | None:
        return await self._pool.fetchval(_NEXT_DUE)

    async def emit(self, *events: EventEnvelope) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await append_events(conn, *events)
