"""Revoking access tokens at once: the watermarks behind their cache, the Authenticator, and
the middleware that runs its check for the synchronous endpoint layer. Fakes and a movable
clock; no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web

from server.auth.authenticator import (
    Authenticator,
    authenticate,
    check_bearer_token,
    still_valid,
)
from server.auth.ports import WatermarkKeys
from server.auth.principal import Principal
from server.auth.revocation import MemoryWatermarkCache, TokenWatermarks, issued_at
from server.auth.tokens import TokenCodec
from server.http.problems import Unauthorized
from storage.errors import StorageError
from tests.unit.fakes_auth import FakeClock, FakeTokenWatermarks

ANN = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e0f"
BOB = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e10"


class FailingCache:
    """A WatermarkCache whose store (Redis) is down."""

    async def get(self, user_id: str) -> int | None:
        raise StorageError("cache down")

    async def offer(self, user_id: str, valid_after: int) -> None:
        raise StorageError("cache down")

    async def raise_to(self, user_id: str, valid_after: int) -> None:
        raise StorageError("cache down")


class Harness:
    def __init__(self, cache: Any = None) -> None:
        self.clock = FakeClock()
        self.monotonic = FakeClock(0.0)
        self.store = FakeTokenWatermarks()
        self.cache = cache if cache is not None else MemoryWatermarkCache(ttl=60,
                                                                          clock=self.monotonic)
        self.watermarks = TokenWatermarks(self.store, self.cache, clock=self.clock)
        self.codec = TokenCodec("k" * 32, issuer="hubbub", audience="hubbub-api", ttl=900,
                                clock=self.clock)
        self.authenticator = Authenticator(self.codec, self.watermarks)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def token(self, user_id: str = ANN) -> str:
        """What a login now hands out (AuthService: `iat` lifted to the watermark)."""
        valid_after, _ = await self.watermarks.state(user_id)
        return self.codec.issue(user_id, "user", issued_at=issued_at(self.now(), valid_after))

    async def sign_out(self, user_id: str) -> int:
        """What AuthService does to sign a user out everywhere (the refresh tokens aside)."""
        valid_after = self.store.raise_to(user_id, self.watermarks.next_watermark(), self.now())
        await self.watermarks.raised(user_id, valid_after)
        return valid_after


@pytest.fixture
def h() -> Harness:
    return Harness()


async def _code(authenticator: Authenticator, token: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        await authenticator.check(token)
    return refused.value.code


async def test_a_sign_out_revokes_the_users_tokens_and_only_theirs(h: Harness) -> None:
    ann, bob = await h.token(ANN), await h.token(BOB)
    assert (await h.authenticator.check(ann)).user_id == ANN
    h.clock.advance(0.9)  # same second as the token's iat
    await h.sign_out(ANN)
    assert await _code(h.authenticator, ann) == "token_revoked"
    assert (await h.authenticator.check(bob)).user_id == BOB
    fresh = await h.token(ANN)
    assert (await h.authenticator.check(fresh)).user_id == ANN


async def test_each_sign_out_raises_the_watermark_even_within_one_second(h: Harness) -> None:
    first = await h.sign_out(ANN)
    assert first == int(h.clock()) + 1
    between = await h.token(ANN)
    second = await h.sign_out(ANN)
    assert second == first + 1
    assert await _code(h.authenticator, between) == "token_revoked"
    h.clock.advance(5)
    assert await h.sign_out(ANN) == int(h.clock()) + 1


async def test_checks_read_the_cache_not_the_store(h: Harness) -> None:
    token = await h.token(ANN)
    reads = h.store.reads
    for _ in range(5):
        await h.authenticator.check(token)
    assert h.store.reads == reads + 1  # one miss, then the cache answers
    h.monotonic.advance(60)  # the cached value expires: read again
    await h.authenticator.check(token)
    assert h.store.reads == reads + 2


async def test_a_sign_out_updates_the_cache_it_is_read_through(h: Harness) -> None:
    token = await h.token(ANN)
    await h.authenticator.check(token)  # caches "no watermark"
    await h.sign_out(ANN)
    reads = h.store.reads
    assert await _code(h.authenticator, token) == "token_revoked"
    assert h.store.reads == reads  # answered by the raised cache entry


async def test_a_failing_cache_falls_back_to_the_store() -> None:
    h = Harness(FailingCache())
    token = await h.token(ANN)
    assert (await h.authenticator.check(token)).user_id == ANN
    await h.sign_out(ANN)  # the cache write fails (logged); the store has it
    assert await _code(h.authenticator, token) == "token_revoked"


async def test_a_failing_store_is_not_a_pass(h: Harness) -> None:
    token = await h.token(ANN)
    h.store.failing = True
    with pytest.raises(ConnectionError):
        await h.authenticator.check(token)


async def test_bad_tokens_are_refused_before_any_lookup(h: Harness) -> None:
    assert await _code(h.authenticator, "not-a-jwt") == "invalid_token"
    assert h.store.reads == 0


async def test_memory_cache_offer_never_lowers_a_raised_value() -> None:
    clock = FakeClock(0.0)
    cache = MemoryWatermarkCache(ttl=10, max_entries=2, clock=clock)
    await cache.raise_to(ANN, 7)
    await cache.offer(ANN, 3)  # a reader that read the store before the raise
    assert await cache.get(ANN) == 7
    await cache.raise_to(ANN, 5)
    assert await cache.get(ANN) == 7
    await cache.offer(BOB, 0)
    await cache.offer("carol", 0)  # beyond max_entries: the least recently used goes
    assert await cache.get(ANN) is None and len(cache) == 2
    clock.advance(10)
    assert await cache.get(BOB) is None


async def test_the_sync_form_answers_only_what_the_middleware_checked(h: Harness) -> None:
    token = await h.token(ANN)
    with pytest.raises(Unauthorized):  # nothing checked in this task: refused, not trusted
        h.authenticator(token)
    seen: list[Principal] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(h.authenticator(token))
        with pytest.raises(Unauthorized):  # another token than the request's
            h.authenticator(await h.token(BOB))
        return web.Response(status=204)

    endpoint = SimpleNamespace(auth=True)
    request = cast(web.Request, SimpleNamespace(
        match_info=SimpleNamespace(handler=SimpleNamespace(__endpoint__=endpoint)),
        headers={"Authorization": f"Bearer {token}"}))
    middleware = check_bearer_token(lambda: h.authenticator)
    assert (await middleware(request, handler)).status == 204
    assert [p.user_id for p in seen] == [ANN]
    with pytest.raises(Unauthorized):  # the answer does not outlive the request
        h.authenticator(token)

    await h.sign_out(ANN)
    with pytest.raises(Unauthorized) as revoked:
        await middleware(request, handler)
    assert revoked.value.code == "token_revoked" and len(seen) == 1

    public = cast(web.Request, SimpleNamespace(
        match_info=SimpleNamespace(handler=SimpleNamespace(
            __endpoint__=SimpleNamespace(auth=False))),
        headers={"Authorization": f"Bearer {token}"}))
    assert (await middleware(public, lambda r: _no_content())).status == 204


async def _no_content() -> web.StreamResponse:
    return web.Response(status=204)


async def test_authenticate_also_takes_a_plain_callable(h: Harness) -> None:
    principal = Principal(user_id=ANN, role="user", token_id="t", expires_at=0)
    assert await authenticate(lambda token: principal, "anything") is principal
    token = await h.token(ANN)
    await h.sign_out(ANN)
    with pytest.raises(Unauthorized):
        await authenticate(h.authenticator, token)


async def test_a_request_without_auth_gets_the_handlers_own_awaitable(h: Harness) -> None:
    # No coroutine of the middleware's wraps it: nothing of ours is held for as long as the
    # handler runs (a Socket.IO websocket: the whole life of the socket).
    middleware = check_bearer_token(lambda: h.authenticator)
    public = cast(web.Request, SimpleNamespace(match_info=SimpleNamespace(
        handler=SimpleNamespace(__endpoint__=SimpleNamespace(auth=False))), headers={}))
    unrouted = cast(web.Request, SimpleNamespace(match_info=SimpleNamespace(
        handler=SimpleNamespace()), headers={}))
    for request in (public, unrouted):
        pending = _no_content()
        assert middleware(request, lambda r, p=pending: p) is pending  # type: ignore[misc]
        assert (await pending).status == 204


class KeyedCache(MemoryWatermarkCache):
    """A WatermarkCache with a key per user, as the Redis one."""

    def key(self, user_id: str) -> str:
        return f"auth:valid-after:{user_id}"

    def complete_key(self) -> str:
        return "auth:valid-after:complete:900"


async def test_a_watermark_read_by_the_caller_spares_the_cache_read() -> None:
    h = Harness(cache=KeyedCache(ttl=60))
    assert Harness().watermarks.cache_keys(ANN) is None  # the memory cache keeps no keys
    assert h.authenticator.watermark_keys(ANN) == WatermarkKeys(
        watermark=f"auth:valid-after:{ANN}", complete="auth:valid-after:complete:900")
    token = await h.token(ANN)
    principal = h.authenticator.verify(token)
    reads = h.store.reads
    # Found in the cache by the caller: no Postgres read.
    assert await still_valid(h.authenticator, principal, 0) is True
    assert h.store.reads == reads
    # Not found: Postgres answers, and the cache is filled.
    assert await still_valid(h.authenticator, principal, None) is True
    assert h.store.reads == reads + 1 and await h.cache.get(ANN) == 0
    await h.sign_out(ANN)
    assert await still_valid(h.authenticator, principal, None) is False  # from Postgres
    assert await still_valid(h.authenticator, principal, await h.cache.get(ANN)) is False
    assert await still_valid(h.authenticator, principal) is False  # reading the cache itself
