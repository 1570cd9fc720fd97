"""Media records exchanged between the media service and its storage adapters.

They never go on the wire (clients see protocols.media.Media); they live here because storage
may import only `protocols`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

MediaStatus = Literal["pending", "ready"]


class BlobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a blob store knows about one stored object."""

    size: int  # bytes
    content_type: str  # as given to put() (or to the presigned PUT)


class MediaRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the media table.

    pending: a presigned upload was issued; `storage_key` is where the client PUTs the bytes,
    `content_type` and `size` are what it declared, width/height/thumb_key are None.
    ready: a verified, re-encoded image at `storage_key` with its thumbnail at `thumb_key`.
    """

    id: str
    owner_id: str
    status: MediaStatus
    content_type: str
    size: int
    width: int | None
    height: int | None
    storage_key: str
    thumb_key: str | None
    created_at: datetime
    post_id: str | None = None  # the post it is attached to, when the query joined post_media
