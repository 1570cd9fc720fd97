"""Media: validated, metadata-free images with thumbnails, uploaded through the API or by a
presigned PUT, attached to posts.

Two ways in, one check: `upload` takes bytes from the API; `create_upload` hands out a pinned,
expiring PUT URL and `complete` then fetches what was put there. Either way the bytes go
through server.media.images (by content, in a worker thread, at most `concurrency` at once),
and only the re-encoded image and its thumbnail are kept. A row becomes `ready` only after
both are stored, so a ready row always has its blobs.

Blob keys: `{media_id}/original.{ext}`, `{media_id}/thumb.webp`, and `{media_id}/upload` for
the unverified bytes of a presigned upload (deleted by `complete`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from protocols.ids import is_id, new_id
from protocols.media import MAX_MEDIA_BYTES, Media, UploadRequest, UploadTicket
from protocols.media_records import MediaRecord
from protocols.problems import FieldError
from server.http.problems import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ValidationFailed,
)
from server.media.images import DEFAULT_MAX_PIXELS, ProcessedImage, process_image
from server.media.ports import BlobStore, MediaStore
from storage.errors import DuplicateError

log = logging.getLogger("hubbub.media")
ABANDON_GRACE = 3600  # seconds after an upload URL expires before its pending media is swept
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    """A validated image whose blobs are stored but whose row is not written yet."""

    id: str
    owner_id: str
    image: ProcessedImage
    storage_key: str
    thumb_key: str

    def record(self) -> MediaRecord:
        return MediaRecord(
            id=self.id, owner_id=self.owner_id, status="ready",
            content_type=self.image.content_type, size=len(self.image.data),
            width=self.image.width, height=self.image.height, storage_key=self.storage_key,
            thumb_key=self.thumb_key, created_at=datetime.now(UTC))


def original_key(media_id: str, extension: str) -> str:
    return f"{media_id}/original.{extension}"


def thumb_key(media_id: str) -> str:
    return f"{media_id}/thumb.webp"


def upload_key(media_id: str) -> str:
    return f"{media_id}/upload"


def _not_found() -> NotFound:
    return NotFound("No such media", code="media_not_found")


def invalid_media(index: int, media_id: str, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"Media {media_id} cannot be attached: {why}", code="invalid_media",
        errors=[FieldError(field=f"media_ids[{index}]", message=f"{media_id}: {why}")])


class MediaService:
    def __init__(self, *, blobs: BlobStore, store: MediaStore, url_ttl: int = 3600,
                 upload_ttl: int = 900, max_pixels: int = DEFAULT_MAX_PIXELS,
                 concurrency: int = 2, clock: Clock = time.time) -> None:
        self._blobs = blobs
        self._store = store
        self._url_ttl = url_ttl
        self._upload_ttl = upload_ttl
        self._max_pixels = max_pixels
        # Image work is CPU-bound: a few threads at a time, so a burst of uploads queues here
        # instead of starving the event loop's own thread of the GIL.
        self._cpu = asyncio.Semaphore(concurrency)
        self._clock = clock

    # -- uploads through the API ---------------------------------------------------------

    async def upload(self, owner_id: str, data: bytes,
                     declared_content_type: str | None = None) -> Media:
        """Validate, store and record one image; the Media is `ready`. The declared content
        type is only logged when it disagrees: the bytes decide."""
        prepared = await self.prepare(owner_id, data, declared_content_type)
        try:
            return await self.commit(prepared)
        except BaseException:
            await self.discard(prepared)
            raise

    async def upload_many(self, owner_id: str, files: Sequence[bytes], *,
                          conn: asyncpg.Connection | None = None) -> list[Media]:
        """`upload` for several files, all or nothing: every file is validated before any is
        stored, so one bad file refuses the request and leaves nothing behind. With `conn`
        the rows are written in the caller's transaction (e.g. with the post that claims
        them); to clean up after that transaction rolls back, use prepare_many /
        commit_many / discard instead."""
        prepared = await self.prepare_many(owner_id, files)
        try:
            return await self.commit_many(prepared, conn=conn)
        except BaseException:
            for item in prepared:
                await self.discard(item)
            raise

    async def prepare_many(self, owner_id: str, files: Sequence[bytes]) -> list[PreparedMedia]:
        """Validate every file (concurrently, at most `concurrency` at once), then store the
        blobs of all; the first refusal is raised as itself and nothing is stored."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._process(data)) for data in files]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        prepared: list[PreparedMedia] = []
        try:
            for task in tasks:
                prepared.append(await self._store_blobs(owner_id, task.result()))
        except BaseException:
            for item in prepared:
                await self.discard(item)
            raise
        return prepared

    async def commit_many(self, prepared: Sequence[PreparedMedia], *,
                          conn: asyncpg.Connection | None = None) -> list[Media]:
        """Write the rows of prepared images, all or none (in the caller's transaction with
        `conn`)."""
        records = [item.record() for item in prepared]
        await self._store.insert_many(records, conn=conn)
        return [await self._to_media(record) for record in records]

    async def prepare(self, owner_id: str, data: bytes,
                      declared_content_type: str | None = None) -> PreparedMedia:
        """Validate and store the blobs of one image, without writing its row (see commit)."""
        image = await self._process(data)
        if declared_content_type and declared_content_type != image.content_type:
            log.info("declared content type differs from the content",
                     extra={"declared": declared_content_type[:100],
                            "detected": image.content_type})
        return await self._store_blobs(owner_id, image)

    async def commit(self, prepared: PreparedMedia, *,
                     conn: asyncpg.Connection | None = None) -> Media:
        """Write the row of a prepared image (inside the caller's transaction with `conn`)."""
        record = prepared.record()
        await self._store.insert(record, conn=conn)
        return await self._to_media(record)

    async def discard(self, prepared: PreparedMedia) -> None:
        """Delete the blobs of a prepared image whose row will not be written."""
        await self._delete_quietly(prepared.storage_key, prepared.thumb_key)

    # -- presigned uploads ---------------------------------------------------------------

    async def create_upload(self, owner_id: str, request: UploadRequest, *,
                            conn: asyncpg.Connection | None = None) -> UploadTicket:
        """A pending media row and a pinned PUT URL for exactly `size` bytes of
        `content_type`, valid for the upload TTL. Then `complete`."""
        media_id = new_id()
        key = upload_key(media_id)
        url, headers = await self._blobs.presigned_put(key, request.content_type, request.size,
                                                       self._upload_ttl)
        await self._store.insert(MediaRecord(
            id=media_id, owner_id=owner_id, status="pending", content_type=request.content_type,
            size=request.size, width=None, height=None, storage_key=key, thumb_key=None,
            created_at=datetime.now(UTC)), conn=conn)
        expires_at = datetime.fromtimestamp(int(self._clock()) + self._upload_ttl, UTC)
        return UploadTicket(id=media_id, upload_url=url, expires_at=expires_at,
                            method="PUT", headers=headers)

    async def complete(self, owner_id: str, media_id: str) -> Media:
        """Verify the bytes PUT for a pending upload exactly as `upload` would, store the
        re-encoded image and thumbnail, and mark the media ready. Idempotent: completing a
        ready media returns it. Bytes that fail validation are deleted with the pending row
        and the problem is raised; 409 `upload_missing` when nothing was PUT yet (the row
        stays pending, so the client may still upload and retry)."""
        record = await self._owned(owner_id, media_id)
        if record.status == "ready":
            return await self._to_media(record)
        info = await self._blobs.head(record.storage_key)
        if info is None:
            raise Conflict("Nothing has been uploaded to the upload URL yet",
                           code="upload_missing")
        if info.size > MAX_MEDIA_BYTES:
            await self._abandon(record)
            raise PayloadTooLarge(f"An image may be at most {MAX_MEDIA_BYTES} bytes",
                                  code="too_large")
        if info.size != record.size:
            await self._abandon(record)
            raise ValidationFailed(f"{info.size} bytes were uploaded, {record.size} declared",
                                   code="upload_mismatch")
        data = await self._blobs.get(record.storage_key)
        if data is None:
            raise Conflict("Nothing has been uploaded to the upload URL yet",
                           code="upload_missing")
        try:
            image = await self._process(data)
        except ProblemError as problem:
            if problem.status < 500:  # refused by validation (not a crash of ours)
                await self._abandon(record)
            raise
        original, thumbnail = original_key(media_id, image.extension), thumb_key(media_id)
        await self._put_image(original, thumbnail, image)
        ready = await self._store.mark_ready(
            media_id, content_type=image.content_type, size=len(image.data), width=image.width,
            height=image.height, storage_key=original, thumb_key=thumbnail)
        if ready is None:
            # A concurrent complete won (it wrote the same keys with the same bytes), or the
            # sweeper took the row (then the blobs just written belong to nobody).
            try:
                current = await self._owned(owner_id, media_id)
            except NotFound:
                await self._delete_quietly(original, thumbnail, record.storage_key)
                raise
            if current.status != "ready":
                raise Conflict("The upload changed while it was being completed",
                               code="upload_conflict")
            ready = current
        await self._delete_quietly(record.storage_key)
        return await self._to_media(ready)

    async def sweep_abandoned(self, limit: int = 500) -> int:
        """Delete presigned uploads never completed, an hour past their URL's expiry (the
        client can no longer upload, and has had time to complete): rows and any bytes put.
        Returns how many were swept."""
        records = await self._store.take_abandoned(self._upload_ttl + ABANDON_GRACE, limit)
        for record in records:
            await self._delete_quietly(record.storage_key)
        return len(records)

    # -- reading -------------------------------------------------------------------------

    async def get(self, viewer_id: str, media_id: str) -> Media:
        """A media item for its owner; 404 `media_not_found` for anyone else (media reach
        others through the posts they are attached to)."""
        return await self._to_media(await self._owned(viewer_id, media_id))

    async def get_many(self, media_ids: Sequence[str], viewer_id: str | None) -> list[Media]:
        """The ready media among `media_ids` in the given order (plus the viewer's own
        pending ones); unknown ids are left out."""
        records = {r.id: r for r in await self._store.get_many(media_ids)}
        found = [records[i] for i in dict.fromkeys(media_ids) if i in records]
        return [await self._to_media(r) for r in found
                if r.status == "ready" or r.owner_id == viewer_id]

    async def media_for_posts(self, post_ids: Sequence[str]) -> dict[str, list[Media]]:
        """The media of each post in position order (one query for all the posts); posts
        without media are absent from the answer."""
        by_post = await self._store.for_posts(post_ids)
        return {post_id: [await self._to_media(r) for r in records]
                for post_id, records in by_post.items()}

    # -- attaching to posts --------------------------------------------------------------

    async def claim_for_post(self, conn: asyncpg.Connection, owner_id: str,
                             media_ids: Sequence[str], post_id: str) -> None:
        """Inside the post's transaction: attach `media_ids` (in order) to the post. Every id
        must be the owner's, ready and unattached, and appear once; otherwise 422
        `invalid_media` naming the first bad id (`media_ids[i]`), and nothing is attached
        (the caller's transaction is expected to roll back)."""
        if not media_ids:
            return
        seen: set[str] = set()
        for index, media_id in enumerate(media_ids):
            if not is_id(media_id):
                raise invalid_media(index, media_id, "not a media id")
            if media_id in seen:
                raise invalid_media(index, media_id, "listed twice")
            seen.add(media_id)
        records = {r.id: r for r in await self._store.lock_for_claim(conn, media_ids)}
        for index, media_id in enumerate(media_ids):
            record = records.get(media_id)
            if record is None or record.owner_id != owner_id:
                raise invalid_media(index, media_id, "no such media of yours")
            if record.status != "ready":
                raise invalid_media(index, media_id, "the upload is not completed")
            if record.post_id is not None:
                raise invalid_media(index, media_id, "already attached to a post")
        try:
            await self._store.attach(conn, post_id, media_ids)
        except DuplicateError:  # a concurrent claim won after all (the lock makes this rare)
            raise invalid_media(0, media_ids[0], "already attached to a post") from None

    # -- internals -----------------------------------------------------------------------

    async def _process(self, data: bytes) -> ProcessedImage:
        async with self._cpu:
            return await asyncio.to_thread(process_image, data, max_pixels=self._max_pixels)

    async def _store_blobs(self, owner_id: str, image: ProcessedImage) -> PreparedMedia:
        media_id = new_id()
        prepared = PreparedMedia(id=media_id, owner_id=owner_id, image=image,
                                 storage_key=original_key(media_id, image.extension),
                                 thumb_key=thumb_key(media_id))
        await self._put_image(prepared.storage_key, prepared.thumb_key, image)
        return prepared

    async def _put_image(self, original: str, thumbnail: str, image: ProcessedImage) -> None:
        try:
            await asyncio.gather(
                self._blobs.put(original, image.data, image.content_type),
                self._blobs.put(thumbnail, image.thumbnail, image.thumbnail_content_type),
            )
        except BaseException:
            await self._delete_quietly(original, thumbnail)
            raise

    async def _owned(self, owner_id: str, media_id: str) -> MediaRecord:
        record = await self._store.get(media_id) if is_id(media_id) else None
        if record is None or record.owner_id != owner_id:
            raise _not_found()
        return record

    async def _abandon(self, record: MediaRecord) -> None:
        """Drop a pending upload that failed validation: its bytes and its row."""
        await self._delete_quietly(record.storage_key)
        await self._store.delete_pending(record.id)

    async def _delete_quietly(self, *keys: str) -> None:
        for key in keys:
            try:
                await self._blobs.delete(key)
            except Exception:  # cleanup must not hide the error being handled
                log.warning("could not delete blob %s", key, exc_info=True)

    async def _to_media(self, record: MediaRecord) -> Media:
        if record.status != "ready":
            # Unverified bytes are never served: a pending media has no URL yet.
            return Media(id=record.id, url="", content_type=record.content_type,
                         size=record.size, width=None, height=None, status="pending")
        url = await self._blobs.url_for(record.storage_key, self._url_ttl)
        thumb = (await self._blobs.url_for(record.thumb_key, self._url_ttl)
                 if record.thumb_key else None)
        return Media(id=record.id, url=url, content_type=record.content_type, size=record.size,
                     width=record.width, height=record.height, thumbnail_url=thumb,
                     status="ready")
