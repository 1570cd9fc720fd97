"""Wire the auth area: its routes, its service (built once the database is up) and the
bearer-token authenticator every authenticated route and Socket.IO connection uses, with the
middleware that runs its asynchronous part (the revocation watermark) before each endpoint
that needs a token. With REDIS_URL, also the task refreshing the watermark cache
(server/auth/watermark_refresher.py), cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from argon2 import PasswordHasher

from server.auth.authenticator import Authenticator, check_bearer_token
from server.auth.mail import LogMailer
from server.auth.passwords import Passwords
from server.auth.ports import Mailer, WatermarkCache
from server.auth.revocation import CACHE_TTL, MemoryWatermarkCache, TokenWatermarks
from server.auth.secret import resolve_jwt_secret
from server.auth.service import AuthService
from server.auth.tokens import TokenCodec
from server.auth.watermark_refresher import WatermarkRefresher
from server.keys import AUTHENTICATOR, DB_POOL, LIFECYCLE, SETTINGS
from server.resources import optional_redis
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.password_resets import PostgresPasswordResetStore
from storage.postgres.refresh_tokens import PostgresRefreshTokenStore
from storage.postgres.token_watermarks import PostgresTokenWatermarks
from storage.redis.token_watermarks import RedisWatermarkCache

log = logging.getLogger("hubbub.auth")
AUTH_SERVICE = web.AppKey("auth_service", AuthService)
# Set this before startup to deliver mail for real; unset, messages are only logged.
MAILER = web.AppKey("mailer", Mailer)


def setup_auth(app: web.Application) -> None:
    # Imported here: the routes module imports AUTH_SERVICE from this one.
    from server.auth.routes import api

    api.register(app)
    app.cleanup_ctx.append(_auth_ctx)  # after database_ctx, which create_app appends first

    def authenticator() -> Authenticator | None:
        found = app.get(AUTHENTICATOR)
        return found if isinstance(found, Authenticator) else None

    # Innermost: problem_details (outside) renders its 401s, rate limiting runs first.
    app.middlewares.append(check_bearer_token(authenticator))


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secret = await asyncio.to_thread(resolve_jwt_secret, settings)  # may read or write a file
    tokens = TokenCodec(secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                        ttl=settings.access_token_ttl)
    mailer = app.get(MAILER)
    if mailer is None:
        mailer = LogMailer()
        app[LIFECYCLE].adapters["mail"] = "log"
        log.warning("no mail adapter configured: password reset codes are written to the log")
    else:
        app[LIFECYCLE].adapters["mail"] = type(mailer).__name__
    pool = app[DB_POOL]
    client = optional_redis(app)
    store = PostgresTokenWatermarks(pool)
    cache: WatermarkCache
    refresher: WatermarkRefresher | None = None
    if client is not None:
        redis_cache = RedisWatermarkCache(client, settings.redis_key_prefix, ttl=CACHE_TTL,
                                          access_token_ttl=settings.access_token_ttl)
        refresher = WatermarkRefresher(store, redis_cache,
                                       access_token_ttl=settings.access_token_ttl)
        cache = redis_cache
        app[LIFECYCLE].adapters["token_watermarks"] = "redis"
    else:
        cache = MemoryWatermarkCache()
        app[LIFECYCLE].adapters["token_watermarks"] = "memory"
    watermarks = TokenWatermarks(store, cache)

    async def close_sockets(user_id: str) -> None:
        # Imported here: the gateway is set up after this area and imports far more.
        from server.gateway.session import disconnect_user
        from server.gateway.setup import GATEWAY

        gateway = app.get(GATEWAY)
        if gateway is not None:
            await disconnect_user(gateway, user_id)

    app[AUTH_SERVICE] = AuthService(
        accounts=PostgresAccountStore(pool),
        refresh_tokens=PostgresRefreshTokenStore(pool),
        resets=PostgresPasswordResetStore(pool),
        mailer=mailer, tokens=tokens, watermarks=watermarks, settings=settings,
        close_sockets=close_sockets,
        passwords=Passwords(PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )),
    )
    app[AUTHENTICATOR] = Authenticator(tokens, watermarks)
    if refresher is None:
        yield
        return
    # Started last, so no failure of this setup leaves it running (run() logs its own).
    refreshing = asyncio.create_task(refresher.run(), name="token-watermark-refresher")
    try:
        yield
    finally:
        refreshing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refreshing
