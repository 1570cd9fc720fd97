"""What the publishing area needs from storage. Adapter: storage/postgres/publishing_connections.py;
an in-memory twin for unit tests: tests/unit/publishing/fakes.py."""

from __future__ import annotations

from typing import Protocol

from protocols.publishing_connections import ConnectionRecord


class ConnectionStore(Protocol):
    async def insert(self, record: ConnectionRecord) -> None:
        """Store a new connection; durable when it returns."""
        ...

    async def list_for(self, user_id: str) -> list[ConnectionRecord]:
        """The user's connections, oldest first."""
        ...

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        """The connection, whoever owns it, or None (also for a malformed id)."""
        ...

    async def delete(self, user_id: str, connection_id: str) -> bool:
        """Remove it if it is the user's; False when there was no such connection of theirs.
        Scheduled posts naming it fail permanently (`connection_removed`) when published."""
        ...
