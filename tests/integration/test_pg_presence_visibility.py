"""Whose presence a viewer may see: existing users with no block either way (Postgres)."""

from __future__ import annotations

import asyncpg
import pytest

from protocols.ids import new_id
from storage.postgres.visibility import PostgresPresenceVisibility
from tests.integration.test_pg_graph import add_user

pytestmark = pytest.mark.integration


async def test_blocked_either_way_and_missing_users_are_not_visible(
        db_pool: asyncpg.Pool) -> None:
    viewer, friend, blocked, blocker = [await add_user(db_pool, "pv") for _ in range(4)]
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          viewer, blocked)
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          blocker, viewer)
    visibility = PostgresPresenceVisibility(db_pool)
    asked = [friend, blocked, blocker, new_id(), viewer]
    assert await visibility.visible_to(viewer, asked) == {friend, viewer}
    assert await visibility.visible_to(friend, asked) == {friend, blocked, blocker, viewer}
    assert await visibility.visible_to(viewer, []) == set()
