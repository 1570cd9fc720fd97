"""Wire the media area: its routes, the blob store (S3 when S3_ENDPOINT_URL is set, local disk
under DATA_DIR/media otherwise) and the MediaService other areas call (MEDIA_SERVICE)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from server.auth.secret import resolve_jwt_secret
from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from server.media.ports import BlobStore
from server.media.service import MediaService
from storage.local.blob_store import LocalBlobStore
from storage.postgres.media import PostgresMediaStore
from storage.s3.blob_store import S3BlobStore

MEDIA_SERVICE = web.AppKey("media_service", MediaService)
BLOB_STORE = web.AppKey("blob_store", BlobStore)
# Set only with the local-disk store: the routes that serve its signed URLs need it.
LOCAL_MEDIA = web.AppKey("local_media", LocalBlobStore)

# The media URL key is derived from the JWT secret (so clusters that share one share both),
# under its own label, so a media signature can never pass for a token signature.
_SIGNING_LABEL = b"hubbub/media-url-signing/v1"
MEDIA_DIR = "media"
IMAGE_WORKERS = 2  # concurrent image decodes (CPU-bound)
SWEEP_INTERVAL = 600.0  # seconds between sweeps of abandoned presigned uploads
SWEEP_BATCH = 500
log = logging.getLogger("hubbub.media")


def media_signing_key(jwt_secret: str) -> bytes:
    return hmac.new(jwt_secret.encode(), _SIGNING_LABEL, hashlib.sha256).digest()


def setup_media(app: web.Application) -> None:
    # Imported here: the routes module imports the keys above.
    from server.media.routes import api

    api.register(app)
    app.cleanup_ctx.append(media_ctx)  # after database_ctx, which create_app appends first


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    lifecycle = app[LIFECYCLE]
    async with AsyncExitStack() as stack:
        blobs: BlobStore
        if settings.s3_endpoint_url:
            s3 = await stack.enter_async_context(S3BlobStore.connect(
                endpoint_url=settings.s3_endpoint_url, bucket=settings.s3_bucket,
                region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key))
            lifecycle.adapters["media"] = "s3"
            lifecycle.readiness_checks["media"] = s3.ping
            blobs = s3
        else:
            secret = await asyncio.to_thread(resolve_jwt_secret, settings)  # may touch a file
            local = LocalBlobStore(Path(settings.data_dir) / MEDIA_DIR, media_signing_key(secret))
            await local.start()
            app[LOCAL_MEDIA] = local
            lifecycle.adapters["media"] = "local-disk"
            blobs = local
        app[BLOB_STORE] = blobs
        service = MediaService(
            blobs=blobs, store=PostgresMediaStore(app[DB_POOL]),
            url_ttl=settings.media_url_ttl, upload_ttl=settings.media_upload_ttl,
            max_pixels=settings.media_max_pixels, concurrency=IMAGE_WORKERS)
        app[MEDIA_SERVICE] = service
        sweeper = asyncio.create_task(_sweep_forever(service), name="media-sweeper")
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


async def _sweep_forever(service: MediaService) -> None:
    """Remove abandoned presigned uploads now and then (every node does; they share rows)."""
    while True:
        try:
            while await service.sweep_abandoned(SWEEP_BATCH) == SWEEP_BATCH:
                pass  # a full batch: there may be more
        except Exception:
            log.exception("sweeping abandoned media uploads failed; retrying later")
        await asyncio.sleep(SWEEP_INTERVAL)
