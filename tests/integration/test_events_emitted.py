"""The stores append their domain events to the outbox in the change's own transaction, and
only for changes that really happened."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
import pytest

from protocols.events import EventEnvelope, payload
from protocols.ids import new_id
from storage.errors import DuplicateError
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.graph import PostgresGraphStore

pytestmark = pytest.mark.integration


async def add_user(pool: asyncpg.Pool, prefix: str) -> str:
    user_id = new_id()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO users (id, username, email, password_hash, display_name)"
        " VALUES ($1, $2, $3, 'x', $2)", user_id, name, f"{name}@example.test")
    return user_id


async def events_about(pool: asyncpg.Pool, *user_ids: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, payload) of every outbox event whose payload names one of these users."""
    rows = await pool.fetch(
        "SELECT topic, envelope::text AS envelope FROM outbox"
        " WHERE envelope->'data'->>'follower_id' = ANY($1::text[])"
        "    OR envelope->'data'->>'user_id' = ANY($1::text[]) ORDER BY seq", list(user_ids))
    out = []
    for row in rows:
        event = msgspec.json.decode(row["envelope"], type=EventEnvelope)
        assert row["topic"] == "hubbub.users"
        out.append((event.type, msgspec.to_builtins(payload(event))))
    return out


async def test_follow_and_unfollow_emit_once_per_real_change(db_pool: asyncpg.Pool) -> None:
    graph = PostgresGraphStore(db_pool)
    ann, bob = await add_user(db_pool, "ann"), await add_user(db_pool, "bob")
    assert await graph.follow(ann, bob) == "created"
    assert await graph.follow(ann, bob) == "unchanged"
    assert await graph.unfollow(ann, bob) is True
    assert await graph.unfollow(ann, bob) is False
    pair = {"follower_id": ann, "followee_id": bob}
    assert await events_about(db_pool, ann) == [("follow.created", pair),
                                                ("follow.deleted", pair)]
    row = await db_pool.fetchrow(
        "SELECT key, envelope->>'actor_id' AS actor FROM outbox"
        " WHERE envelope->'data'->>'follower_id' = $1 LIMIT 1", ann)
    assert row["key"] == ann and row["actor"] == ann  # keyed by the follower


async def test_refused_follows_emit_nothing(db_pool: asyncpg.Pool) -> None:
    graph = PostgresGraphStore(db_pool)
    ann, bob = await add_user(db_pool, "ann"), await add_user(db_pool, "bob")
    await graph.block(bob, ann)
    assert await graph.follow(ann, bob) == "blocked_by"
    assert await graph.follow(ann, new_id()) == "missing"
    assert await events_about(db_pool, ann) == []


async def test_a_block_emits_a_deletion_for_each_removed_follow(db_pool: asyncpg.Pool) -> None:
    graph = PostgresGraphStore(db_pool)
    ann, bob, cat = (await add_user(db_pool, "ann"), await add_user(db_pool, "bob"),
                     await add_user(db_pool, "cat"))
    await graph.follow(ann, bob)
    await graph.follow(bob, ann)
    await graph.follow(cat, bob)
    assert await graph.block(bob, ann) is True
    assert await graph.block(bob, ann) is False  # nothing left to remove
    deleted = [(t, p) for t, p in await events_about(db_pool, ann, bob)
               if t == "follow.deleted"]
    assert sorted(p["follower_id"] for _, p in deleted) == sorted([ann, bob])
    actors = await db_pool.fetch(
        "SELECT envelope->>'actor_id' AS actor FROM outbox WHERE type = 'follow.deleted'"
        " AND envelope->'data'->>'follower_id' = ANY($1::text[])", [ann, bob])
    assert {r["actor"] for r in actors} == {bob}  # the blocker did it
    assert await events_about(db_pool, cat) == [
        ("follow.created", {"follower_id": cat, "followee_id": bob})]


async def test_account_creation_emits_user_created(db_pool: asyncpg.Pool) -> None:
    accounts = PostgresAccountStore(db_pool)
    name = f"new_{uuid.uuid4().hex[:10]}"
    me = await accounts.create(user_id=new_id(), username=name, email=f"{name}@example.test",
                               password_hash="x", display_name="New")
    assert await events_about(db_pool, me.id) == [
        ("user.created", {"user_id": me.id, "username": name})]
    row = await db_pool.fetchrow("SELECT key, published_at FROM outbox"
                                 " WHERE envelope->'data'->>'user_id' = $1", me.id)
    assert row["key"] == me.id


async def test_a_refused_signup_emits_nothing(db_pool: asyncpg.Pool) -> None:
    accounts = PostgresAccountStore(db_pool)
    name = f"dup_{uuid.uuid4().hex[:10]}"
    first = await accounts.create(user_id=new_id(), username=name,
                                  email=f"{name}@example.test", password_hash="x",
                                  display_name="")
    second_id = new_id()
    with pytest.raises(DuplicateError):
        await accounts.create(user_id=second_id, username=name.upper(),
                              email=f"other_{name}@example.test", password_hash="x",
                              display_name="")
    assert await events_about(db_pool, second_id) == []
    assert len(await events_about(db_pool, first.id)) == 1
