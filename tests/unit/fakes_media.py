"""In-memory twins of server.media.ports: BlobStore and MediaStore (connections are ignored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from protocols.ids import is_id
from protocols.media_records import BlobInfo, MediaRecord
from storage.blobs import check_key
from storage.errors import DuplicateError


@dataclass
class MemoryBlobStore:
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[check_key(key)] = (bytes(data), content_type)

    async def get(self, key: str) -> bytes | None:
        found = self.objects.get(check_key(key))
        return found[0] if found else None

    async def head(self, key: str) -> BlobInfo | None:
        found = self.objects.get(check_key(key))
        return BlobInfo(size=len(found[0]), content_type=found[1]) if found else None

    async def delete(self, key: str) -> None:
        self.objects.pop(check_key(key), None)

    async def presigned_put(self, key: str, content_type: str, size: int,
                            expires: int) -> tuple[str, dict[str, str]]:
        return (f"memory://put/{check_key(key)}?type={content_type}&size={size}&ttl={expires}",
                {"Content-Type": content_type})

    async def url_for(self, key: str, expires: int) -> str:
        return f"memory://get/{check_key(key)}?ttl={expires}"


@dataclass
class MemoryMediaStore:
    rows: dict[str, MediaRecord] = field(default_factory=dict)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)  # media -> (post, position)

    def _with_post(self, record: MediaRecord) -> MediaRecord:
        link = self.links.get(record.id)
        return msgspec.structs.replace(record, post_id=link[0] if link else None)

    async def insert(self, record: MediaRecord, *, conn: Any = None) -> None:
        if record.id in self.rows:
            raise DuplicateError("media_pkey")
        self.rows[record.id] = msgspec.structs.replace(record, post_id=None)

    async def insert_many(self, records: Sequence[MediaRecord], *, conn: Any = None) -> None:
        if any(r.id in self.rows for r in records):
            raise DuplicateError("media_pkey")
        for record in records:
            await self.insert(record)

    async def get(self, media_id: str) -> MediaRecord | None:
        record = self.rows.get(media_id)
        return self._with_post(record) if record else None

    async def get_many(self, media_ids: Sequence[str]) -> list[MediaRecord]:
        return [self._with_post(self.rows[i]) for i in dict.fromkeys(media_ids)
                if i in self.rows]

    async def mark_ready(self, media_id: str, *, content_type: str, size: int, width: int,
                         height: int, storage_key: str, thumb_key: str) -> MediaRecord | None:
        record = self.rows.get(media_id)
        if record is None or record.status != "pending":
            return None
        ready = msgspec.structs.replace(record, status="ready", content_type=content_type,
                                        size=size, width=width, height=height,
                                        storage_key=storage_key, thumb_key=thumb_key)
        self.rows[media_id] = ready
        return ready

    async def delete_pending(self, media_id: str) -> bool:
        record = self.rows.get(media_id)
        if record is None or record.status != "pending":
            return False
        del self.rows[media_id]
        return True

    async def take_abandoned(self, older_than: float, limit: int) -> list[MediaRecord]:
        now = datetime.now(UTC)
        taken = [r for r in self.rows.values() if r.status == "pending"
                 and (now - r.created_at).total_seconds() > older_than][:limit]
        for record in taken:
            del self.rows[record.id]
        return taken

    async def for_posts(self, post_ids: Sequence[str]) -> dict[str, list[MediaRecord]]:
        found: dict[str, list[tuple[int, MediaRecord]]] = {}
        for media_id, (post_id, position) in self.links.items():
            if post_id in post_ids:
                found.setdefault(post_id, []).append((position, self._with_post(
                    self.rows[media_id])))
        return {post: [r for _, r in sorted(items, key=lambda item: item[0])]
                for post, items in found.items()}

    async def lock_for_claim(self, conn: Any, media_ids: Sequence[str]) -> list[MediaRecord]:
        return [self._with_post(self.rows[i]) for i in dict.fromkeys(media_ids)
                if is_id(i) and i in self.rows]

    async def attach(self, conn: Any, post_id: str, media_ids: Sequence[str]) -> None:
        if any(i in self.links for i in media_ids):
            raise DuplicateError("post_media_media_id_key")
        for position, media_id in enumerate(media_ids):
            self.links[media_id] = (post_id, position)
