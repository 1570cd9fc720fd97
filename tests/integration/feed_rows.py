"""Rows for the feed and notification tests, written straight into Postgres."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from storage.postgres.graph import PostgresGraphStore


class Rows:
    """Users, follows and posts. Post ids are UUIDv7s one millisecond apart, so their order is
    their creation order exactly (new_id() only orders by millisecond)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.graph = PostgresGraphStore(pool)
        self._ms = int(datetime.now(UTC).timestamp() * 1000)

    def next_id(self, at: datetime | None = None) -> str:
        if at is None:
            self._ms += 1
            ms = self._ms
        else:
            ms = int(at.timestamp() * 1000)
        rand = int.from_bytes(os.urandom(8), "big")
        value = (ms << 80) | (0x7 << 76) | (0b10 << 62) | (rand & ((1 << 62) - 1))
        return str(uuid.UUID(int=value))

    async def user(self, prefix: str = "u") -> str:
        user_id = str(uuid.uuid4())
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        await self.pool.execute(
            "INSERT INTO users (id, username, email, password_hash, display_name)"
            " VALUES ($1, $2, $3, 'x', $4)", user_id, name, f"{name}@example.test", name)
        return user_id

    async def users(self, n: int, prefix: str = "u") -> list[str]:
        return [await self.user(prefix) for _ in range(n)]

    async def follow(self, follower: str, *followees: str) -> None:
        for followee in followees:
            assert await self.graph.follow(follower, followee) == "created"

    async def post(self, author: str, *, reply_to: str | None = None,
                   repost_of: str | None = None, quote_of: str | None = None,
                   deleted: bool = False, age: timedelta | None = None) -> str:
        at = datetime.now(UTC) - age if age is not None else None
        post_id = self.next_id(at)
        await self.pool.execute(
            "INSERT INTO posts (id, author_id, text, reply_to_id, repost_of_id, quote_of_id,"
            " created_at, deleted_at)"
            " VALUES ($1, $2, 'hello', $3, $4, $5, coalesce($6, now()),"
            " CASE WHEN $7 THEN now() END)",
            post_id, author, reply_to, repost_of, quote_of, at, deleted)
        return post_id

    async def like(self, user: str, post: str, *, age: timedelta | None = None) -> None:
        at = datetime.now(UTC) - (age or timedelta())
        await self.pool.execute(
            "INSERT INTO likes (post_id, user_id, created_at) VALUES ($1, $2, $3)",
            post, user, at)

    async def comment(self, user: str, post: str) -> str:
        comment_id = self.next_id()
        await self.pool.execute(
            "INSERT INTO comments (id, post_id, author_id, text) VALUES ($1, $2, $3, 'hi')",
            comment_id, post, user)
        return comment_id
