"""The Postgres profile and graph stores against a real database: exact counts under
concurrency, blocks, keyset pages, visibility, and the last-admin rule.

The tests taking `backend` are the ports' contract: they run over the in-memory fakes of
tests/unit/fakes_users.py as well, so the fakes the unit tests trust cannot drift from Postgres.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from protocols.ids import new_id
from protocols.users import ProfilePatch
from server.users.ports import GraphStore, ProfileStore
from storage.postgres.graph import PostgresGraphStore
from storage.postgres.migrate import migrate_dsn
from storage.postgres.pool import create_pool
from storage.postgres.profiles import PostgresProfileStore
from tests.support.databases import create_database, drop_database
from tests.unit.fakes_users import MemoryGraphStore, MemoryProfileStore, World

pytestmark = pytest.mark.integration


async def add_user(pool: asyncpg.Pool, prefix: str = "u", role: str = "user") -> str:
    user_id = new_id()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO users (id, username, email, password_hash, display_name, role)"
        " VALUES ($1, $2, $3, 'x', $4, $5)",
        user_id, name, f"{name}@example.test", name.title(), role)
    return user_id


async def counts(pool: asyncpg.Pool, user_id: str) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT follower_count, following_count FROM users WHERE id = $1", user_id)
    return row["follower_count"], row["following_count"]


async def true_counts(pool: asyncpg.Pool, user_id: str) -> tuple[int, int]:
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM follows WHERE followee_id = $1) AS followers,
                  (SELECT count(*) FROM follows WHERE follower_id = $1) AS following""",
        user_id)
    return row["followers"], row["following"]


@dataclass
class Backend:
    graph: GraphStore
    profiles: ProfileStore
    add_user: Callable[[str], Awaitable[str]]
    counts: Callable[[str], Awaitable[tuple[int, int]]]  # the stored counters
    true_counts: Callable[[str], Awaitable[tuple[int, int]]]  # counted from the rows


def _memory_backend() -> Backend:
    world = World()

    async def add(prefix: str) -> str:
        return world.add_user(f"{prefix}_{uuid.uuid4().hex[:10]}")

    async def stored(user_id: str) -> tuple[int, int]:
        user = world.users[user_id]
        return user.follower_count, user.following_count

    async def counted(user_id: str) -> tuple[int, int]:
        return (sum(1 for _, b in world.follows if b == user_id),
                sum(1 for a, _ in world.follows if a == user_id))

    return Backend(MemoryGraphStore(world), MemoryProfileStore(world), add, stored, counted)


def _postgres_backend(pool: asyncpg.Pool) -> Backend:
    async def add(prefix: str) -> str:
        return await add_user(pool, prefix)

    async def stored(user_id: str) -> tuple[int, int]:
        return await counts(pool, user_id)

    async def counted(user_id: str) -> tuple[int, int]:
        return await true_counts(pool, user_id)

    return Backend(PostgresGraphStore(pool), PostgresProfileStore(pool), add, stored, counted)


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return _memory_backend()
    return _postgres_backend(request.getfixturevalue("db_pool"))


@pytest.fixture
def graph(db_pool: asyncpg.Pool) -> PostgresGraphStore:
    return PostgresGraphStore(db_pool)


@pytest.fixture
def profiles(db_pool: asyncpg.Pool) -> PostgresProfileStore:
    return PostgresProfileStore(db_pool)


async def test_twenty_concurrent_follows_of_one_pair_count_once(
    db_pool: asyncpg.Pool, graph: PostgresGraphStore
) -> None:
    a, b = await add_user(db_pool), await add_user(db_pool)
    outcomes = await asyncio.gather(*(graph.follow(a, b) for _ in range(20)))
    assert sorted(outcomes) == ["created"] + ["unchanged"] * 19
    assert await counts(db_pool, b) == (1, 0) and await counts(db_pool, a) == (0, 1)
    removed = await asyncio.gather(*(graph.unfollow(a, b) for _ in range(20)))
    assert removed.count(True) == 1
    assert await counts(db_pool, b) == (0, 0) and await counts(db_pool, a) == (0, 0)


async def test_twenty_different_followers_concurrently(
    db_pool: asyncpg.Pool, graph: PostgresGraphStore
) -> None:
    star = await add_user(db_pool, "star")
    fans = [await add_user(db_pool, "fan") for _ in range(20)]
    outcomes = await asyncio.gather(*(graph.follow(fan, star) for fan in fans))
    assert outcomes == ["created"] * 20
    assert await counts(db_pool, star) == (20, 0)
    assert [await counts(db_pool, fan) for fan in fans] == [(0, 1)] * 20


async def test_concurrent_mixed_changes_of_a_pair_never_deadlock_and_stay_exact(
    db_pool: asyncpg.Pool, graph: PostgresGraphStore
) -> None:
    a, b = await add_user(db_pool), await add_user(db_pool)
    ops = []
    for i in range(10):
        ops += [graph.follow(a, b), graph.follow(b, a), graph.unfollow(a, b),
                graph.unfollow(b, a)]
        if i == 5:
            ops += [graph.block(a, b), graph.unblock(a, b)]
    await asyncio.gather(*ops)
    for user in (a, b):
        assert await counts(db_pool, user) == await true_counts(db_pool, user)
    blocked = await graph.is_blocked_either_way(a, b)
    if blocked:  # the block landed after the unblock: no follow may survive it
        assert await true_counts(db_pool, a) == (0, 0)


async def test_follow_refused_across_a_block(backend: Backend) -> None:
    graph = backend.graph
    a, b = await backend.add_user("a"), await backend.add_user("b")
    assert await graph.block(a, b) is True
    assert await graph.follow(a, b) == "blocking"
    assert await graph.follow(b, a) == "blocked_by"
    assert await graph.follow(a, str(uuid.uuid4())) == "missing"
    assert await graph.block(a, str(uuid.uuid4())) is None
    assert await backend.true_counts(a) == (0, 0) == await backend.counts(a)
    assert await graph.is_blocked_either_way(b, a)
    assert not await graph.is_blocked_either_way(a, await backend.add_user("c"))


async def test_block_removes_follows_both_ways_and_fixes_counts(backend: Backend) -> None:
    graph = backend.graph
    a, b, c = [await backend.add_user(p) for p in "abc"]
    for follower, followee in ((a, b), (b, a), (c, a), (a, c)):
        assert await graph.follow(follower, followee) == "created"
    assert await backend.counts(a) == (2, 2)
    assert await graph.block(a, b) is True
    assert await graph.block(a, b) is False  # idempotent, and the counts do not move again
    assert await backend.counts(a) == (1, 1) == await backend.true_counts(a)
    assert await backend.counts(b) == (0, 0) == await backend.true_counts(b)
    rel = await graph.relationship(a, b)
    assert (rel.user_id, rel.blocking, rel.following, rel.followed_by) == (b, True, False, False)
    assert not (await graph.relationship(b, a)).blocking
    assert await graph.unblock(a, b) is True and await graph.unblock(a, b) is False
    assert await graph.follow(b, a) == "created"
    assert await graph.unfollow(b, a) is True and await graph.unfollow(b, a) is False
    assert await backend.counts(a) == (1, 1) == await backend.true_counts(a)


async def test_mute_and_unmute_are_idempotent(backend: Backend) -> None:
    graph = backend.graph
    a, b = await backend.add_user("a"), await backend.add_user("b")
    assert [await graph.mute(a, b), await graph.mute(a, b)] == [True, False]
    assert (await graph.relationship(a, b)).muting
    assert not (await graph.relationship(b, a)).muting
    assert [await graph.unmute(a, b), await graph.unmute(a, b)] == [True, False]


async def _walk(fetch, limit: int) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    after = None
    while True:
        items, after = await fetch(limit=limit, after=after)
        assert len(items) <= limit
        seen += [item.id for item in items]
        if after is None:
            return seen


async def test_pages_return_every_row_once_in_order_with_equal_times(
    db_pool: asyncpg.Pool, graph: PostgresGraphStore
) -> None:
    star, viewer = await add_user(db_pool, "star"), await add_user(db_pool, "viewer")
    fans = [await add_user(db_pool, "fan") for _ in range(11)]
    base = datetime(2024, 1, 1, tzinfo=UTC)
    # Seven fans share one instant, so only the id tie-break orders them.
    times = [base] * 7 + [base + timedelta(seconds=s) for s in (1, 2, 2, 3)]
    await db_pool.executemany(
        "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3)",
        [(fan, star, at) for fan, at in zip(fans, times, strict=True)])
    await db_pool.executemany(
        "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3)",
        [(fans[0], fan, at) for fan, at in zip(fans[1:], times[1:], strict=True)])
    expected = [fan for _, fan in sorted(zip(times, fans, strict=True), reverse=True)]
    for limit in (1, 3, 7, 11, 100):
        assert await _walk(
            lambda **kw: graph.followers(star, viewer, **kw), limit) == expected
    # fans[0] follows star and the ten other fans, star and six fans at the shared instant.
    followed = [(times[0], star), *zip(times[1:], fans[1:], strict=True)]
    following = [user for _, user in sorted(followed, reverse=True)]
    assert await _walk(lambda **kw: graph.following(fans[0], viewer, **kw), 4) == following
    # A page that ends exactly at the last row says there is nothing after it.
    items, after = await graph.followers(star, viewer, limit=11, after=None)
    assert len(items) == 11 and after is None


async def test_pages_leave_out_users_hidden_from_the_viewer(backend: Backend) -> None:
    graph = backend.graph
    star, viewer = await backend.add_user("star"), await backend.add_user("viewer")
    fans = [await backend.add_user("fan") for _ in range(5)]
    for fan in fans:
        await graph.follow(fan, star)
        await graph.follow(star, fan)
    await graph.block(fans[1], viewer)  # they block the viewer
    await graph.block(viewer, fans[3])  # the viewer blocks them
    # Rows made in one transaction can share a timestamp; the walk order is the store's own.
    everyone = await _walk(lambda **kw: graph.followers(star, star, **kw), 2)
    assert sorted(everyone) == sorted(fans)
    visible = [f for f in everyone if f not in (fans[1], fans[3])]
    assert await _walk(lambda **kw: graph.followers(star, viewer, **kw), 2) == visible
    following = await _walk(lambda **kw: graph.following(star, viewer, **kw), 1)
    assert sorted(following) == sorted(visible)


async def test_profiles_as_seen_by_a_viewer(backend: Backend) -> None:
    graph, profiles = backend.graph, backend.profiles
    a, b = await backend.add_user("a"), await backend.add_user("b")
    username = (await profiles.profile_by_id(None, b)).username  # type: ignore[union-attr]
    assert await profiles.id_by_username(username.upper()) == b
    assert await profiles.id_by_username("no_such_user_" + uuid.uuid4().hex) is None
    assert await profiles.exists(a) and not await profiles.exists(str(uuid.uuid4()))
    assert await profiles.profile_by_id(a, str(uuid.uuid4())) is None
    await graph.follow(b, a)
    await graph.mute(a, b)
    seen = await profiles.profile_by_username(a, username.upper())
    assert seen is not None and seen.id == b
    assert (seen.follows_me, seen.followed_by_me, seen.muted_by_me) == (True, False, True)
    assert (seen.following_count, seen.follower_count) == (1, 0)
    own = await profiles.profile_by_id(a, a)
    assert own is not None and not (own.follows_me or own.followed_by_me)
    await graph.block(b, a)
    assert await profiles.profile_by_id(a, b) is None
    assert await profiles.profile_by_id(b, a) is None
    assert await profiles.profile_by_username(a, username) is None
    assert (await profiles.profile_by_id(None, b)) is not None  # the system view


async def test_update_profile_sets_given_fields_only(backend: Backend) -> None:
    profiles = backend.profiles
    a = await backend.add_user("a")
    before = await profiles.profile_by_id(None, a)
    media = new_id()
    me = await profiles.update_profile(a, ProfilePatch(bio="hello", avatar_media_id=media))
    assert me is not None and (me.bio, me.avatar_media_id) == ("hello", media)
    assert me.display_name == before.display_name  # type: ignore[union-attr]
    assert me.updated_at > me.created_at
    me = await profiles.update_profile(a, msgspec.json.decode(
        b'{"avatar_media_id": null, "display_name": ""}', type=ProfilePatch))
    assert me is not None and (me.bio, me.avatar_media_id, me.display_name) == ("hello", None, "")
    assert await profiles.update_profile(str(uuid.uuid4()), ProfilePatch(bio="x")) is None


@pytest_asyncio.fixture
async def lonely_pool(admin_pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: the last-admin rule counts every admin in the table."""
    dsn = await create_database(admin_pg_dsn)
    await migrate_dsn(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()
    await drop_database(admin_pg_dsn, dsn)


async def test_the_last_admin_cannot_be_demoted_even_concurrently(
    lonely_pool: asyncpg.Pool,
) -> None:
    profiles = PostgresProfileStore(lonely_pool)
    root = await add_user(lonely_pool, "root", role="admin")
    ann = await add_user(lonely_pool, "ann")
    assert await profiles.set_role(root, "user") == "last_admin"
    assert await profiles.set_role(ann, "admin") == "changed"
    assert await profiles.set_role(ann, "admin") == "changed"  # idempotent
    # Two admins demoting each other at once: exactly one may win.
    outcomes = await asyncio.gather(profiles.set_role(root, "user"),
                                    profiles.set_role(ann, "moderator"))
    assert sorted(outcomes) == ["changed", "last_admin"]
    assert await lonely_pool.fetchval("SELECT count(*) FROM users WHERE role = 'admin'") == 1
    assert await profiles.set_role(str(uuid.uuid4()), "admin") == "missing"
