"""Wire publishing into the app: the connections routes and service, and the `webhook` and
`x` publishers plugged into the scheduling area's registry (server.scheduling.keys).

Call setup_publishing after setup_media and before setup_scheduling: its context then
registers the publishers before the scheduler starts (a post due at start finds them), and
is torn down after the scheduler stopped (no round is left using the HTTP session).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from actors.clock import LoopClock
from server.keys import DB_POOL, SETTINGS
from server.media.wiring import BLOB_STORE
from server.publishing.crypto import SecretBox, resolve_keys
from server.publishing.keys import CONNECTION_SERVICE
from server.publishing.service import ConnectionService
from server.publishing.webhook import WebhookPublisher
from server.publishing.x import DropRateLimits, MediaReader, RateLimitSink, XPublisher
from server.scheduling.keys import RATE_LIMIT_REPORTER, add_publisher
from storage.postgres.media import PostgresMediaStore
from storage.postgres.publishing_connections import PostgresConnectionStore


def _media_reader(app: web.Application) -> MediaReader:
    store = PostgresMediaStore(app[DB_POOL])

    async def read(owner_id: str, media_id: str) -> tuple[bytes, str] | None:
        record = await store.get(media_id)
        if record is None or record.owner_id != owner_id or record.status != "ready":
            return None
        data = await app[BLOB_STORE].get(record.storage_key)
        return None if data is None else (data, record.content_type)

    return read


def _rate_limit_sink(app: web.Application) -> RateLimitSink:
    # Looked up per use: scheduling_ctx sets it after this context ran.
    reporter = app.get(RATE_LIMIT_REPORTER)
    return reporter if reporter is not None else DropRateLimits()


async def publishing_ctx(app: web.Application) -> AsyncIterator[None]:
    """After database_ctx and media_ctx, before scheduling_ctx."""
    settings = app[SETTINGS]
    clock = LoopClock()
    keys = await asyncio.to_thread(resolve_keys, settings)  # may touch a file
    service = ConnectionService(
        PostgresConnectionStore(app[DB_POOL]), SecretBox(keys), clock,
        allow_http_localhost=settings.publishing_allow_http_localhost)
    app[CONNECTION_SERVICE] = service
    async with aiohttp.ClientSession() as session:
        timeout = settings.publishing_http_timeout
        webhook = WebhookPublisher(service, session, clock, timeout=timeout)
        x = XPublisher(service, session, clock, base_url=settings.x_api_base_url,
                       timeout=timeout, media=_media_reader(app),
                       rate_limits=lambda: _rate_limit_sink(app))
        for publisher in (webhook, x):
            kind = publisher.kind

            async def check(user_id: str, connection_id: str, kind: str = kind) -> bool:
                return await service.owns(kind, user_id, connection_id)

            add_publisher(app, publisher, connection_check=check)
        yield


def setup_publishing(app: web.Application) -> None:
    # Imported here: the handlers look the service up under CONNECTION_SERVICE.
    from server.publishing.routes import api

    api.register(app)
    app.cleanup_ctx.append(publishing_ctx)
