"""Local-disk adapter of server.media.ports.BlobStore: the embedded default (DATA_DIR/media).

Layout under `root`: `objects/<key>` holds the bytes, `types/<key>` the content type, `tmp/`
the files being written. A write goes to a temporary file that is fsynced and then renamed
into place (rename is atomic on one filesystem), so a reader sees the old object or the whole
new one, and an acknowledged write survives a crash. Keys are checked against
storage.blobs.KEY_PATTERN and the resolved path must stay under `objects/`, so no key can name
a file elsewhere. File I/O is blocking, so it runs in worker threads.

Hubbub itself serves the URLs this store hands out, signed like S3 presigned URLs so they can
be neither guessed nor altered: `GET {prefix}/{key}?expires=E&token=T` and
`PUT {prefix}/{key}?expires=E&type=CT&size=N&token=T`, where T is the unpadded base64url
HMAC-SHA256, under the signing key, of the method, key, (content type, size,) and expiry,
joined by newlines. `check_get` / `check_put` verify them for the route handlers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode

from protocols.media_records import BlobInfo
from storage.blobs import InvalidKey, check_key

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# GET URLs expire on a multiple of this many seconds, so the same object gets the same URL
# for a while (browsers and CDNs can cache it) while still lasting at least what was asked.
URL_GRANULARITY = 300

Verdict = Literal["valid", "expired", "invalid"]


@dataclass(frozen=True, slots=True)
class PutGrant:
    verdict: Verdict
    content_type: str = ""  # what the signed URL pins (only when valid)
    size: int = 0


class LocalBlobStore:
    def __init__(self, root: str | Path, signing_key: bytes, *, url_prefix: str = "/media",
                 clock: Callable[[], float] = time.time) -> None:
        self._root = Path(root).resolve()
        self._objects = self._root / "objects"
        self._types = self._root / "types"
        self._tmp = self._root / "tmp"
        self._key = signing_key
        self._prefix = url_prefix.rstrip("/")
        self._clock = clock

    async def start(self) -> None:
        """Create the directories (blocking, so in a thread); call once before use."""
        def make() -> None:
            for folder in (self._objects, self._types, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(make)

    # -- BlobStore -----------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path, type_path = self._paths(key)
        await asyncio.to_thread(self._put, path, type_path, data, content_type)

    async def get(self, key: str) -> bytes | None:
        path, _ = self._paths(key)
        return await asyncio.to_thread(_read_or_none, path)

    async def head(self, key: str) -> BlobInfo | None:
        path, type_path = self._paths(key)
        return await asyncio.to_thread(_head, path, type_path)

    async def delete(self, key: str) -> None:
        path, type_path = self._paths(key)
        await asyncio.to_thread(self._delete, path, type_path)

    async def presigned_put(self, key: str, content_type: str, size: int,
                            expires: int) -> tuple[str, dict[str, str]]:
        check_key(key)
        expiry = int(self._clock()) + expires
        token = self._sign("PUT", key, content_type, str(size), str(expiry))
        query = urlencode({"expires": expiry, "type": content_type, "size": size,
                           "token": token})
        return f"{self._prefix}/{quote(key)}?{query}", {"Content-Type": content_type}

    async def url_for(self, key: str, expires: int) -> str:
        check_key(key)
        expiry = math.ceil((self._clock() + expires) / URL_GRANULARITY) * URL_GRANULARITY
        query = urlencode({"expires": expiry, "token": self._sign("GET", key, str(expiry))})
        return f"{self._prefix}/{quote(key)}?{query}"

    # -- signed URL checks (for the routes that serve them) ------------------------------

    def check_get(self, key: str, query: Mapping[str, str]) -> Verdict:
        """Whether `query` is a valid, unexpired GET signature for `key`."""
        expiry = _int(query.get("expires"))
        if expiry is None or not _valid_key(key):
            return "invalid"
        if not self._matches(query.get("token", ""), "GET", key, str(expiry)):
            return "invalid"
        return "expired" if expiry < self._clock() else "valid"

    def check_put(self, key: str, query: Mapping[str, str]) -> PutGrant:
        """Whether `query` is a valid, unexpired PUT signature for `key`, and what it pins."""
        expiry, size = _int(query.get("expires")), _int(query.get("size"))
        content_type = query.get("type", "")
        if expiry is None or size is None or not content_type or not _valid_key(key):
            return PutGrant("invalid")
        if not self._matches(query.get("token", ""), "PUT", key, content_type, str(size),
                             str(expiry)):
            return PutGrant("invalid")
        if expiry < self._clock():
            return PutGrant("expired")
        return PutGrant("valid", content_type, size)

    # -- internals -----------------------------------------------------------------------

    def _sign(self, *parts: str) -> str:
        digest = hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _matches(self, token: str, *parts: str) -> bool:
        return hmac.compare_digest(token.encode(), self._sign(*parts).encode())

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        path = self._objects / key
        # Belt and braces (lexical, no I/O): the key rule already excludes `..` and `/...`.
        if ".." in path.parts or not path.is_relative_to(self._objects):
            raise InvalidKey(f"invalid blob key: {key[:80]!r}")
        return path, self._types / key

    def _put(self, path: Path, type_path: Path, data: bytes, content_type: str) -> None:
        # The type first: an object is visible only once its bytes are in place, and by
        # then its type is too.
        _write_atomically(self._tmp, type_path, content_type.encode())
        _write_atomically(self._tmp, path, data)

    def _delete(self, path: Path, type_path: Path) -> None:
        for file, top in ((path, self._objects), (type_path, self._types)):
            file.unlink(missing_ok=True)
            _prune_empty_parents(file.parent, top)


def _write_atomically(tmp_dir: Path, path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = tmp_dir / f"{path.name}.{secrets.token_hex(8)}"
    try:
        with temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _head(path: Path, type_path: Path) -> BlobInfo | None:
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not path.is_file():
        return None
    try:
        content_type = type_path.read_text().strip() or DEFAULT_CONTENT_TYPE
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        content_type = DEFAULT_CONTENT_TYPE
    return BlobInfo(size=stat.st_size, content_type=content_type)


def _prune_empty_parents(folder: Path, top: Path) -> None:
    """Remove directories the delete left empty, up to (not including) `top`."""
    while folder != top and folder.is_relative_to(top):
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): stop
            return
        folder = folder.parent


def _valid_key(key: str) -> bool:
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


def _int(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
