"""Access-token watermarks against real servers: the sign-out and session fence of the
Postgres refresh-token store, the watermark store (migrations 0011, 0016), the Redis cache in
front of it, the two together behind TokenWatermarks, and the refresher that keeps every
watermark that matters in Redis so that a miss reads no Postgres."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from protocols.ids import new_id
from server.app import create_app
from server.auth.revocation import TokenWatermarks
from server.auth.watermark_refresher import SKEW_MARGIN, WatermarkRefresher
from server.config import load_settings
from storage.errors import StorageError
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.refresh_tokens import PostgresRefreshTokenStore
from storage.postgres.token_watermarks import PostgresTokenWatermarks
from storage.redis.token_watermarks import RedisWatermarkCache
from tests.support.polling import eventually
from tests.support.services import free_port

pytestmark = pytest.mark.integration
T = 1_700_000_000  # unix seconds: what the app's clock said
TTL = 900  # ACCESS_TOKEN_TTL


def _hash() -> bytes:
    return hashlib.sha256(uuid.uuid4().bytes).digest()


async def _user_id(db_pool: asyncpg.Pool) -> str:
    name = f"w_{uuid.uuid4().hex[:12]}"
    user = await PostgresAccountStore(db_pool).create(
        user_id=new_id(), username=name, email=f"{name}@example.com",
        password_hash="$argon2id$fake", display_name=name)
    return user.id


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def test_a_sign_out_revokes_refresh_tokens_and_raises_strictly(
    db_pool: asyncpg.Pool,
) -> None:
    tokens, store = PostgresRefreshTokenStore(db_pool), PostgresTokenWatermarks(db_pool)
    user_id = await _user_id(db_pool)
    assert await store.state(user_id) == (0, None)
    live = _hash()
    await tokens.issue(user_id=user_id, family_id=new_id(), token_hash=live,
                       expires_at=_at(T + 3600))
    raised = await tokens.sign_out_everywhere(user_id, now=_at(T + 0.25), at_least=T + 1)
    assert raised == T + 1
    assert await store.state(user_id) == (T + 1, _at(T + 0.25))
    rotation = await tokens.rotate(token_hash=live, new_hash=_hash(), now=_at(T + 1),
                                   new_expires_at=_at(T + 3600))
    assert rotation.outcome == "invalid"  # revoked by the sign-out
    # Again in the same second, an older clock, a later one: strictly up, never down.
    assert await tokens.sign_out_everywhere(user_id, now=_at(T + 0.5), at_least=T + 1) == T + 2
    assert await tokens.sign_out_everywhere(user_id, now=_at(T), at_least=T - 100) == T + 3
    assert await tokens.sign_out_everywhere(user_id, now=_at(T + 50), at_least=T + 51) == (
        T + 51)
    assert await store.get(user_id) == T + 51
    assert await store.get(new_id()) == 0
    assert await store.get("not-a-uuid") == 0


async def test_concurrent_sign_outs_each_get_their_own_watermark(db_pool: asyncpg.Pool) -> None:
    tokens = PostgresRefreshTokenStore(db_pool)
    user_id = await _user_id(db_pool)
    values = await asyncio.gather(*(
        tokens.sign_out_everywhere(user_id, now=_at(T), at_least=T) for _ in range(8)))
    assert sorted(values) == list(range(T, T + 8))


async def test_a_session_checked_before_a_sign_out_is_not_started(db_pool: asyncpg.Pool) -> None:
    tokens = PostgresRefreshTokenStore(db_pool)
    user_id = await _user_id(db_pool)

    async def start(checked_at: float) -> int | None:
        return await tokens.start_session(
            user_id=user_id, family_id=new_id(), token_hash=_hash(),
            expires_at=_at(T + 3600), checked_at=_at(checked_at))

    assert await start(T) == 0  # never signed out
    await tokens.sign_out_everywhere(user_id, now=_at(T + 10.5), at_least=T + 11)
    assert await start(T + 10.4) is None  # its password was read before the sign-out
    assert await start(T + 10.6) == T + 11  # after it: fine, and told the watermark
    rows = await db_pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
        user_id)
    assert rows == 1  # only the later session is live


async def test_the_cache_fills_once_and_only_raises(
    redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, ttl=60, access_token_ttl=TTL)
    user_id = new_id()
    key = f"{clean_redis_prefix}auth:valid-after:{user_id}"
    assert cache.key(user_id) == key
    assert await cache.get(user_id) is None
    await cache.offer(user_id, 0)
    assert await cache.get(user_id) == 0
    assert 0 < await redis_client.ttl(key) <= 60
    await cache.raise_to(user_id, 1_700_000_005)
    await cache.offer(user_id, 0)  # a reader that read Postgres before the raise
    assert await cache.get(user_id) == 1_700_000_005
    await cache.raise_to(user_id, 1_700_000_001)  # an older raise arriving late
    assert await cache.get(user_id) == 1_700_000_005
    await cache.raise_to(user_id, 1_700_000_009)
    assert await cache.get(user_id) == 1_700_000_009
    assert 0 < await redis_client.ttl(key) <= 60


async def test_watermarks_through_redis_and_postgres(
    db_pool: asyncpg.Pool, redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    user_id = await _user_id(db_pool)
    node_a = TokenWatermarks(PostgresTokenWatermarks(db_pool),
                             RedisWatermarkCache(redis_client, clean_redis_prefix,
                                                 access_token_ttl=TTL))
    node_b = TokenWatermarks(PostgresTokenWatermarks(db_pool),
                             RedisWatermarkCache(redis_client, clean_redis_prefix,
                                                 access_token_ttl=TTL))
    assert await node_b.valid_after(user_id) == 0  # cached on the way
    raised = await PostgresRefreshTokenStore(db_pool).sign_out_everywhere(
        user_id, now=datetime.now(UTC), at_least=node_a.next_watermark())
    assert await node_b.valid_after(user_id) == 0  # the cache still has the old value...
    await node_a.raised(user_id, raised)  # ...until the signing-out node raises it
    assert await node_b.valid_after(user_id) == raised  # the other node sees it at once
    assert (await node_b.state(user_id))[0] == raised


async def test_an_unreachable_cache_is_a_storage_error() -> None:
    closed = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    cache = RedisWatermarkCache(closed, "hubbub-test:dead:", access_token_ttl=TTL)
    try:
        with pytest.raises(StorageError):
            await cache.get(new_id())
        with pytest.raises(StorageError):
            await cache.offer(new_id(), 0)
        with pytest.raises(StorageError):
            await cache.raise_to(new_id(), 1)
        with pytest.raises(StorageError):
            await cache.load([(new_id(), 1)])
        with pytest.raises(StorageError):
            await cache.mark_complete(0.0)
    finally:
        await closed.aclose()


class CountingStore:
    """The Postgres watermark store, counting the reads a check makes."""

    def __init__(self, db_pool: asyncpg.Pool) -> None:
        self.store = PostgresTokenWatermarks(db_pool)
        self.reads = 0

    async def get(self, user_id: str) -> int:
        self.reads += 1
        return await self.store.get(user_id)

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        self.reads += 1
        return await self.store.state(user_id)

    async def recent(self, since: int, limit: int) -> list[tuple[str, int]]:
        return await self.store.recent(since, limit)


async def _signed_out(db_pool: asyncpg.Pool, valid_after: int) -> str:
    """A new user whose watermark is `valid_after` (in Postgres only)."""
    user_id = await _user_id(db_pool)
    assert await PostgresRefreshTokenStore(db_pool).sign_out_everywhere(
        user_id, now=datetime.now(UTC), at_least=valid_after) == valid_after
    return user_id


async def test_recent_watermarks_come_from_an_index(db_pool: asyncpg.Pool) -> None:
    now = 1_950_000_000  # far from every other test's watermarks
    user_id = await _signed_out(db_pool, now)
    store = PostgresTokenWatermarks(db_pool)
    assert await store.recent(now - 1, 10) == [(user_id, now)]
    assert await store.recent(now, 10) == []
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # a tiny table: force the choice
        plan = "\n".join(row[0] for row in await conn.fetch(
            "EXPLAIN SELECT user_id FROM token_watermarks WHERE valid_after > $1", now))
    assert "token_watermarks_valid_after_idx" in plan


async def test_the_refresher_loads_what_matters_and_marks_the_cache_complete(
    db_pool: asyncpg.Pool, redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    now = 1_900_000_000  # the refresher's clock: far from every other test's watermarks
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=TTL)
    recent = await _signed_out(db_pool, now - 100)
    edge = await _signed_out(db_pool, now - TTL - SKEW_MARGIN + 1)  # the oldest still loaded
    old = await _signed_out(db_pool, now - TTL - SKEW_MARGIN)  # expired every token it refuses
    higher = await _signed_out(db_pool, now - 10)
    await cache.raise_to(higher, now + 5)  # a later sign-out, already in Redis
    equal = await _signed_out(db_pool, now - 20)
    await cache.offer(equal, now - 20)
    await redis_client.expire(cache.key(equal), 5)  # about to expire: the refresh extends it
    refresher = WatermarkRefresher(PostgresTokenWatermarks(db_pool), cache,
                                   access_token_ttl=TTL, clock=lambda: now)

    assert await refresher.refresh() is True
    assert await cache.get(recent) == now - 100
    assert await cache.get(edge) == now - TTL - SKEW_MARGIN + 1
    assert await redis_client.get(cache.key(old)) is None  # not loaded...
    assert await cache.get(old) == 0  # ...and, the cache being complete, a known 0
    assert await cache.get(higher) == now + 5  # never lowered
    assert await cache.get(equal) == now - 20
    for user_id in (recent, edge, equal):
        assert 55 <= await redis_client.ttl(cache.key(user_id)) <= 60
    # The marker: named by the token TTL, and gone before any key the refresh wrote.
    assert cache.complete_key() == f"{clean_redis_prefix}auth:valid-after:complete:{TTL}"
    assert 0 < await redis_client.pttl(cache.complete_key()) <= 40_000
    # A node configured with a longer token TTL needs an older look-back: not this marker.
    longer = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=2 * TTL)
    assert await longer.get(old) is None


async def test_a_read_too_old_to_vouch_for_sets_no_marker(
    redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=TTL)
    assert await cache.mark_complete(40.0) is False
    assert await redis_client.exists(cache.complete_key()) == 0
    assert await cache.mark_complete(39.5) is True
    assert 0 < await redis_client.pttl(cache.complete_key()) <= 500


async def test_with_the_cache_complete_a_miss_reads_no_postgres(
    db_pool: asyncpg.Pool, redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    store = CountingStore(db_pool)
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, access_token_ttl=TTL)
    watermarks = TokenWatermarks(store, cache)
    refresher = WatermarkRefresher(store, cache, access_token_ttl=TTL)
    # Not marked complete: a miss reads Postgres and fills the cache, as ever.
    assert await watermarks.valid_after(await _user_id(db_pool)) == 0
    assert store.reads == 1
    value = watermarks.next_watermark()
    signed_out = await _signed_out(db_pool, value)
    assert await refresher.refresh() is True
    # Complete: a miss is a known 0, and a recent watermark is cached.
    assert await watermarks.valid_after(await _user_id(db_pool)) == 0
    assert await watermarks.valid_after(signed_out) == value
    assert store.reads == 1
    # A sign-out whose Redis raise failed: stale until the next refresh, not longer.
    value = watermarks.next_watermark()
    lagging = await _signed_out(db_pool, value)
    assert await watermarks.valid_after(lagging) == 0
    assert await refresher.refresh() is True
    assert await watermarks.valid_after(lagging) == value
    assert store.reads == 1
    # Without the marker (expired, say), Postgres answers again.
    await redis_client.delete(cache.complete_key())
    assert await watermarks.valid_after(await _user_id(db_pool)) == 0
    assert store.reads == 2


async def test_a_node_with_redis_refreshes_while_it_runs(
    database_dsn: str, redis_url: str, redis_client: redis.Redis, clean_redis_prefix: str
) -> None:
    app = create_app(load_settings({
        "DATABASE_URL": database_dsn, "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": clean_redis_prefix, "JWT_SECRET": "x" * 32,
        "ACCESS_TOKEN_TTL": str(TTL)}))
    marker = f"{clean_redis_prefix}auth:valid-after:complete:{TTL}"

    async def marked() -> bool:
        return bool(await redis_client.exists(marker))

    async with TestServer(app, host="127.0.0.1"):
        await eventually(marked, 10, "the first refresh to mark the cache complete")
    # Stopped with the app.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "token-watermark-refresher"]
