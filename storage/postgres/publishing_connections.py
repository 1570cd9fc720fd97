"""Postgres ConnectionStore (server.publishing.ports): publishing connections, one row each
(storage/migrations/0013_publishing_connections.sql). The credentials arrive sealed and leave
sealed; this module never sees them in clear."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from protocols.publishing_connections import ConnectionRecord

_COLUMNS = ("id, user_id, kind, label, url, external_user_id, username, expires_at, sealed, "
            "created_at")
# Connection ids in URLs and targets are lower-cased UUIDs; anything else matches no row.
_NO_ROW = "00000000-0000-0000-0000-000000000000"


class PostgresConnectionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, record: ConnectionRecord) -> None:
        await self._pool.execute(
            f"INSERT INTO publishing_connections ({_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            record.id, record.user_id, record.kind, record.label, record.url,
            record.external_user_id, record.username, record.expires_at, record.sealed,
            record.created_at)

    async def list_for(self, user_id: str) -> list[ConnectionRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM publishing_connections WHERE user_id = $1"
            " ORDER BY created_at, id", user_id)
        return [_record(row) for row in rows]

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM publishing_connections WHERE id = $1",
            _uuid_or_none(connection_id))
        return _record(row) if row is not None else None

    async def delete(self, user_id: str, connection_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM publishing_connections WHERE id = $1 AND user_id = $2",
            _uuid_or_none(connection_id), user_id)
        return status == "DELETE 1"


def _uuid_or_none(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return _NO_ROW


def _record(row: Mapping[str, Any]) -> ConnectionRecord:
    return ConnectionRecord(
        id=str(row["id"]), user_id=str(row["user_id"]), kind=row["kind"], label=row["label"],
        url=row["url"], external_user_id=row["external_user_id"], username=row["username"],
        expires_at=row["expires_at"], sealed=bytes(row["sealed"]), created_at=row["created_at"])
