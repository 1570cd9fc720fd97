"""Serve the web client: `/` (index.html) and its files under `/app/<path>`.

The client is plain ES modules in server/static/app/ (no build step) plus the vendored
socket.io-client browser bundle under server/static/app/vendor/ (its README.md says which
version and how to refresh it). Like the docs pages (server/openapi/wiring.py), every file is
read once at startup and served from memory with an ETag: our own files revalidate
(`no-cache`), vendored ones live under versioned folders and are cached for good. The page's
Content-Security-Policy allows nothing but this origin (plus the S3 endpoint's, for media
URLs and presigned uploads, when S3 is configured), so the client works without any outside
network.

`/` is a typed endpoint, documented like `/docs`; `/app/<path>` is a plain route, like
`/docs/<path>`, so the API document lists no asset files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from urllib.parse import urlsplit

from aiohttp import web

from server.http.endpoint import Endpoints
from server.http.static_files import (
    IMMUTABLE,
    REVALIDATE,
    Asset,
    content_type,
    files_handler,
    walk,
)
from server.keys import SETTINGS

api = Endpoints("web")
APP_DIR = "app"
VENDOR = "vendor/"



def csp(extra_origins: str = "") -> str:
    """Only this origin: scripts, styles, the API and the socket ('self' covers ws: and wss:
    to the same host). Images and video may also be blob: (upload previews) and mediastream:
    (camera, peers)."""
    extra = f" {extra_origins}" if extra_origins else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src 'self'{extra}; img-src 'self' data: blob:{extra}; "
            "media-src 'self' blob: mediastream:; font-src 'self'; manifest-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True, slots=True)
class WebClientAssets:
    index: Asset
    files: Mapping[str, Asset]  # by their path under /app/
    csp: str


WEB_CLIENT_ASSETS = web.AppKey("web_client_assets", WebClientAssets)


def load_assets(extra_origins: str = "") -> WebClientAssets:
    folder = resources.files("server") / "static" / APP_DIR
    if not folder.is_dir():  # e.g. a wheel whose package-data left it out
        raise FileNotFoundError(f"{folder} is missing: the web client is not installed")
    files = {
        path: Asset.of(entry.read_bytes(), content_type(path),
                       IMMUTABLE if path.startswith(VENDOR) else REVALIDATE)
        for path, entry in walk(folder)
    }
    index = files.pop("index.html")
    return WebClientAssets(index=index, files=MappingProxyType(files), csp=csp(extra_origins))


def _origin(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@api.get("/", name="web.index", auth=False,
         summary="The web client (an HTML page)",
         description="Sign up, feed, chat, calls and notifications in the browser; it loads "
                     "nothing but this origin's /app/ files, /v1 and /socket.io/.")
async def index(request: web.Request) -> web.StreamResponse:
    assets = request.app[WEB_CLIENT_ASSETS]
    return assets.index.response(request, **{"Content-Security-Policy": assets.csp})


def setup_web_client(app: web.Application) -> None:
    api.register(app)
    app.router.add_get("/app/{path:.+}",
                       files_handler(lambda app: app[WEB_CLIENT_ASSETS].files),
                       name="web.file")

    async def prepare(app: web.Application) -> None:
        app[WEB_CLIENT_ASSETS] = load_assets(_origin(app[SETTINGS].s3_endpoint_url))

    app.on_startup.append(prepare)
