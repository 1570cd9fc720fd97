"""Wire the auth area: its routes, its service (built once the database is up) and the
bearer-token authenticator every authenticated route and Socket.IO connection uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from argon2 import PasswordHasher

from server.auth.mail import LogMailer
from server.auth.passwords import Passwords
from server.auth.ports import Mailer
from server.auth.secret import resolve_jwt_secret
from server.auth.service import AuthService
from server.auth.tokens import TokenCodec
from server.keys import AUTHENTICATOR, DB_POOL, LIFECYCLE, SETTINGS
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.password_resets import PostgresPasswordResetStore
from storage.postgres.refresh_tokens import PostgresRefreshTokenStore

log = logging.getLogger("hubbub.auth")
AUTH_SERVICE = web.AppKey("auth_service", AuthService)
# Set this before startup to deliver mail for real; unset, messages are only logged.
MAILER = web.AppKey("mailer", Mailer)


def setup_auth(app: web.Application) -> None:
    # Imported here: the routes module imports AUTH_SERVICE from this one.
    from server.auth.routes import api

    api.register(app)
    app.cleanup_ctx.append(_auth_ctx)  # after database_ctx, which create_app appends first


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
    app[AUTH_SERVICE] = AuthService(
        accounts=PostgresAccountStore(pool),
        refresh_tokens=PostgresRefreshTokenStore(pool),
        resets=PostgresPasswordResetStore(pool),
        mailer=mailer, tokens=tokens, settings=settings,
        passwords=Passwords(PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )),
    )
    app[AUTHENTICATOR] = tokens.verify
    yield
