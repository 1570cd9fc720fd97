"""In-memory ConnectionStore (server.publishing.ports) for unit tests."""

from __future__ import annotations

from protocols.publishing_connections import ConnectionRecord


class MemoryConnectionStore:
    def __init__(self) -> None:
        self.rows: dict[str, ConnectionRecord] = {}

    async def insert(self, record: ConnectionRecord) -> None:
        self.rows[record.id] = record

    async def list_for(self, user_id: str) -> list[ConnectionRecord]:
        mine = [r for r in self.rows.values() if r.user_id == user_id]
        return sorted(mine, key=lambda r: (r.created_at, r.id))

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        return self.rows.get(connection_id)

    async def delete(self, user_id: str, connection_id: str) -> bool:
        row = self.rows.get(connection_id)
        if row is None or row.user_id != user_id:
            return False
        del self.rows[connection_id]
        return True
