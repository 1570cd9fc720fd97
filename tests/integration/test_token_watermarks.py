"""Access-token watermarks against real servers: the sign-out and session fence of the
Postgres refresh-token store, the watermark store (migration 0011), the Redis cache in front
of it, and the two together behind TokenWatermarks."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from protocols.ids import new_id
from server.auth.revocation import TokenWatermarks
from storage.errors import StorageError
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.refresh_tokens import PostgresRefreshTokenStore
from storage.postgres.token_watermarks import PostgresTokenWatermarks
from storage.redis.token_watermarks import RedisWatermarkCache
from tests.support.services import free_port

pytestmark = pytest.mark.integration
T = 1_700_000_000  # unix seconds: what the app's clock said


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
    cache = RedisWatermarkCache(redis_client, clean_redis_prefix, ttl=60)
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
                             RedisWatermarkCache(redis_client, clean_redis_prefix))
    node_b = TokenWatermarks(PostgresTokenWatermarks(db_pool),
                             RedisWatermarkCache(redis_client, clean_redis_prefix))
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
    cache = RedisWatermarkCache(closed, "hubbub-test:dead:")
    try:
        with pytest.raises(StorageError):
            await cache.get(new_id())
        with pytest.raises(StorageError):
            await cache.offer(new_id(), 0)
        with pytest.raises(StorageError):
            await cache.raise_to(new_id(), 1)
    finally:
        await closed.aclose()
