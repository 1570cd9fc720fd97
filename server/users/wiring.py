"""Wire the users area into the app: its routes, and its service built on the shared pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import DB_POOL
from server.users.service import UserService
from storage.postgres.graph import PostgresGraphStore
from storage.postgres.profiles import PostgresProfileStore

USER_SERVICE = web.AppKey("user_service", UserService)


async def users_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the service once the database pool exists (after database_ctx)."""
    pool = app[DB_POOL]
    app[USER_SERVICE] = UserService(profiles=PostgresProfileStore(pool),
                                    graph=PostgresGraphStore(pool))
    yield


def setup_users(app: web.Application) -> None:
    # Imported here: the route handlers look the service up under USER_SERVICE above.
    from server.users.routes import admin_api, api

    api.register(app)
    admin_api.register(app)
    app.cleanup_ctx.append(users_ctx)
