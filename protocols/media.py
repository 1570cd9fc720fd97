"""Media shapes: an uploaded image as clients see it, and the presigned-upload handshake."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocols.base import Inbound, Outbound

ImageType = Literal["image/jpeg", "image/png", "image/webp", "image/gif"]
MAX_MEDIA_BYTES = 10 * 1024 * 1024


class Media(Outbound):
    id: str
    url: str  # served by Hubbub (local disk) or presigned (S3); may expire
    content_type: str
    size: int
    width: int | None
    height: int | None
    thumbnail_url: str | None = None
    status: Literal["pending", "ready"] = "ready"


class UploadRequest(Inbound):
    content_type: ImageType
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_MEDIA_BYTES)]


class UploadTicket(Outbound):
    id: str
    upload_url: str
    expires_at: datetime
    method: str = "PUT"
    headers: dict[str, str] = {}  # send these with the PUT (e.g. Content-Type)
