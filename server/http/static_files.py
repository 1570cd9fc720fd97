"""Files served from memory (the docs pages, the web client): read once at startup, each with
a strong ETag (304 on a match) and its cache policy: revalidated for our own files, cached for
good for vendored ones (they live under versioned folders and never change)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from types import MappingProxyType

from aiohttp import web

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
CONTENT_TYPES: Mapping[str, str] = MappingProxyType({
    ".html": "text/html", ".js": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".md": "text/markdown", ".txt": "text/plain",
    ".svg": "image/svg+xml", ".png": "image/png", ".webmanifest": "application/manifest+json",
    "": "text/plain",  # LICENSE, NOTICE
})


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(PurePosixPath(path).suffix, "application/octet-stream")


def walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    """Every file below `folder`, as (its path under `folder` after `prefix`, the file)."""
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from walk(entry, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield prefix + entry.name, entry


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache_control: str = REVALIDATE

    @classmethod
    def of(cls, body: bytes, content_type: str, cache_control: str = REVALIDATE) -> Asset:
        return cls(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                   cache_control)

    def response(self, request: web.Request, **headers: str) -> web.Response:
        common = {"ETag": self.etag, "Cache-Control": self.cache_control, **headers}
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers=common)
        return web.Response(body=self.body, content_type=self.content_type,
                            charset="utf-8", headers=common)


def files_handler(files_of: Callable[[web.Application], Mapping[str, Asset]]) -> web.Handler:
    """A GET handler for `{path}` routes answering the app's file of that path, else 404."""
    async def handler(request: web.Request) -> web.StreamResponse:
        asset = files_of(request.app).get(request.match_info["path"])
        if asset is None:
            raise web.HTTPNotFound()
        return asset.response(request)

    return handler
