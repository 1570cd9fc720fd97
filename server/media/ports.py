"""What the media service needs from the outside world.

Adapters: storage/s3/blob_store.py (S3 via aiobotocore) and storage/local/blob_store.py (local
disk, the embedded default) for `BlobStore`; storage/postgres/media.py for `MediaStore`.
In-memory twins for unit tests live in tests/unit/fakes_media.py.

Blob keys follow storage.blobs.KEY_PATTERN; every BlobStore method raises
storage.blobs.InvalidKey for any other key, and storage.errors.StorageError when the backend
fails (the caller cannot fix that by changing its input).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg

from protocols.media_records import BlobInfo, MediaRecord


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any object there. When it returns the object is
        durable and visible to get/head/url_for. Atomic: readers see the old object or the
        whole new one, never a part."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no object under `key`."""
        ...

    async def head(self, key: str) -> BlobInfo | None:
        """Size and content type of the object, or None when there is none (no body read)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; idempotent (a missing object is not an error)."""
        ...

    async def presigned_put(self, key: str, content_type: str, size: int,
                            expires: int) -> tuple[str, dict[str, str]]:
        """A URL and the headers with which a client uploads this object directly, without a
        Hubbub token, for `expires` seconds.

        The grant is pinned: the PUT must carry exactly `size` bytes with `Content-Type:
        content_type`; whoever serves the URL refuses anything else. The URL is absolute, or
        site-relative (starting with "/") when Hubbub itself serves it. Computed locally: no
        I/O. Raises storage.blobs.NotSupported when the backend cannot grant direct uploads.
        """
        ...

    async def url_for(self, key: str, expires: int) -> str:
        """A URL clients can GET the object from, valid for at least `expires` seconds
        (adapters may round the expiry up, so the URL stays the same for a while and caches
        work). Absolute, or site-relative ("/...") when Hubbub serves it. Computed locally:
        the object need not exist (then the URL answers 404)."""
        ...


class MediaStore(Protocol):
    async def insert(self, record: MediaRecord, *, conn: asyncpg.Connection | None = None) -> None:
        """Insert a media row (`post_id` is ignored). With `conn`, inside the caller's open
        transaction (durable when it commits); otherwise durable when it returns."""
        ...

    async def insert_many(self, records: Sequence[MediaRecord], *,
                          conn: asyncpg.Connection | None = None) -> None:
        """Insert several rows, all or none; `conn` as for insert."""
        ...

    async def get(self, media_id: str) -> MediaRecord | None:
        """The row with `post_id` filled in when attached, or None (also for a malformed id)."""
        ...

    async def get_many(self, media_ids: Sequence[str]) -> list[MediaRecord]:
        """The existing rows among `media_ids`, in no particular order (malformed ids skipped)."""
        ...

    async def mark_ready(self, media_id: str, *, content_type: str, size: int, width: int,
                         height: int, storage_key: str, thumb_key: str) -> MediaRecord | None:
        """Turn a pending row ready with the verified image's facts. None when the row is
        missing or not pending (of two concurrent completions exactly one gets the record)."""
        ...

    async def delete_pending(self, media_id: str) -> bool:
        """Delete the row if it is still pending; True when a row was deleted."""
        ...

    async def take_abandoned(self, older_than: float, limit: int) -> list[MediaRecord]:
        """Delete up to `limit` pending rows created more than `older_than` seconds ago (by
        the database clock) and return them; concurrent callers never get the same row."""
        ...

    async def for_posts(self, post_ids: Sequence[str]) -> dict[str, list[MediaRecord]]:
        """The media attached to each post, by position; posts without media are absent."""
        ...

    async def lock_for_claim(self, conn: asyncpg.Connection,
                             media_ids: Sequence[str]) -> list[MediaRecord]:
        """Inside the caller's transaction: lock the existing rows among `media_ids` (FOR
        UPDATE, in id order, so concurrent claims serialize without deadlock) and return them
        with `post_id` as committed after the lock was granted. Malformed ids are skipped."""
        ...

    async def attach(self, conn: asyncpg.Connection, post_id: str,
                     media_ids: Sequence[str]) -> None:
        """Inside the caller's transaction: attach the media to the post at positions 0, 1,
        ... in the given order. Raises storage.errors.DuplicateError (`post_media_media_id_key`)
        when one is attached already."""
        ...
