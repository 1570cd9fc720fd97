"""Postgres adapter of server.media.ports.MediaStore: the media table and post_media links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from protocols.ids import is_id
from protocols.media_records import MediaRecord
from storage.errors import DuplicateError

_COLUMNS = ("m.id, m.owner_id, m.status, m.content_type, m.size, m.width, m.height, "
            "m.storage_key, m.thumb_key, m.created_at")

_INSERT = """
INSERT INTO media (id, owner_id, status, content_type, size, width, height, storage_key,
                   thumb_key, ready_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $3 = 'ready' THEN now() END)
"""
_SELECT_WITH_POST = f"""
SELECT {_COLUMNS}, pm.post_id
FROM media m LEFT JOIN post_media pm ON pm.media_id = m.id
"""
_MARK_READY = f"""
UPDATE media m SET status = 'ready', content_type = $2, size = $3, width = $4, height = $5,
                   storage_key = $6, thumb_key = $7, ready_at = now()
WHERE m.id = $1 AND m.status = 'pending'
RETURNING {_COLUMNS}
"""
_FOR_POSTS = f"""
SELECT pm.post_id, {_COLUMNS}
FROM post_media pm JOIN media m ON m.id = pm.media_id
WHERE pm.post_id = ANY($1::uuid[])
ORDER BY pm.post_id, pm.position
"""
# SKIP LOCKED: sweepers on several nodes share the work instead of queueing on it.
_TAKE_ABANDONED = f"""
DELETE FROM media m WHERE m.id IN (
    SELECT id FROM media
    WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""
# Lock in id order: two transactions claiming overlapping sets wait instead of deadlocking.
_LOCK = "SELECT id FROM media WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_ATTACH = """
INSERT INTO post_media (post_id, media_id, position)
SELECT $1, t.media_id, t.ord - 1 FROM unnest($2::uuid[]) WITH ORDINALITY AS t(media_id, ord)
"""


class PostgresMediaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, record: MediaRecord, *, conn: asyncpg.Connection | None = None) -> None:
        executor: Any = conn if conn is not None else self._pool
        await executor.execute(
            _INSERT, record.id, record.owner_id, record.status, record.content_type,
            record.size, record.width, record.height, record.storage_key, record.thumb_key,
        )

    async def insert_many(self, records: Sequence[MediaRecord], *,
                          conn: asyncpg.Connection | None = None) -> None:
        if not records:
            return
        args = [(r.id, r.owner_id, r.status, r.content_type, r.size, r.width, r.height,
                 r.storage_key, r.thumb_key) for r in records]
        if conn is not None:
            await conn.executemany(_INSERT, args)
            return
        async with self._pool.acquire() as own, own.transaction():
            await own.executemany(_INSERT, args)

    async def get(self, media_id: str) -> MediaRecord | None:
        if not is_id(media_id):
            return None
        row = await self._pool.fetchrow(_SELECT_WITH_POST + "WHERE m.id = $1", media_id)
        return _record(row) if row is not None else None

    async def get_many(self, media_ids: Sequence[str]) -> list[MediaRecord]:
        ids = _valid_ids(media_ids)
        if not ids:
            return []
        rows = await self._pool.fetch(_SELECT_WITH_POST + "WHERE m.id = ANY($1::uuid[])", ids)
        return [_record(row) for row in rows]

    async def mark_ready(self, media_id: str, *, content_type: str, size: int, width: int,
                         height: int, storage_key: str, thumb_key: str) -> MediaRecord | None:
        row = await self._pool.fetchrow(_MARK_READY, media_id, content_type, size, width,
                                        height, storage_key, thumb_key)
        return _record(row) if row is not None else None

    async def delete_pending(self, media_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM media WHERE id = $1 AND status = 'pending'", media_id)
        return status == "DELETE 1"

    async def take_abandoned(self, older_than: float, limit: int) -> list[MediaRecord]:
        rows = await self._pool.fetch(_TAKE_ABANDONED, float(older_than), limit)
        return [_record(row) for row in rows]

    async def for_posts(self, post_ids: Sequence[str]) -> dict[str, list[MediaRecord]]:
        ids = _valid_ids(post_ids)
        if not ids:
            return {}
        found: dict[str, list[MediaRecord]] = {}
        for row in await self._pool.fetch(_FOR_POSTS, ids):
            found.setdefault(row["post_id"], []).append(_record(row))
        return found

    async def lock_for_claim(self, conn: asyncpg.Connection,
                             media_ids: Sequence[str]) -> list[MediaRecord]:
        ids = _valid_ids(media_ids)
        if not ids:
            return []
        await conn.execute(_LOCK, ids)
        # A second statement, so its snapshot (READ COMMITTED) includes links committed by a
        # transaction we waited for while locking.
        rows = await conn.fetch(_SELECT_WITH_POST + "WHERE m.id = ANY($1::uuid[])", ids)
        return [_record(row) for row in rows]

    async def attach(self, conn: asyncpg.Connection, post_id: str,
                     media_ids: Sequence[str]) -> None:
        if not media_ids:
            return
        try:
            await conn.execute(_ATTACH, post_id, list(media_ids))
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateError(exc.constraint_name or "post_media_media_id_key") from exc


def _valid_ids(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if is_id(i)))


def _record(row: asyncpg.Record) -> MediaRecord:
    return MediaRecord(
        id=row["id"], owner_id=row["owner_id"], status=row["status"],
        content_type=row["content_type"], size=row["size"], width=row["width"],
        height=row["height"], storage_key=row["storage_key"], thumb_key=row["thumb_key"],
        created_at=row["created_at"],
        post_id=row.get("post_id"),
    )
