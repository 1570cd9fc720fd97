"""Serve the OpenAPI document at /openapi.json and the offline docs page at /docs.

The document is generated once, at startup (after every area has registered its endpoints),
and served from memory. The page (server/static/docs.*) is plain HTML, CSS and JavaScript
with no external resources: it works on a machine with no network at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

from server.http.endpoint import Endpoints
from server.keys import ENDPOINTS
from server.openapi.generator import build_openapi

api = Endpoints("docs")
# Only our own files and requests to this origin: the page must never reach the network.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        return cls(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: web.Request, **headers: str) -> web.Response:
        common = {"ETag": self.etag, "Cache-Control": "no-cache", **headers}
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers=common)
        return web.Response(body=self.body, content_type=self.content_type,
                            charset="utf-8", headers=common)


@dataclass(frozen=True, slots=True)
class DocsAssets:
    openapi: Asset
    page: Asset
    script: Asset
    style: Asset


DOCS_ASSETS = web.AppKey("docs_assets", DocsAssets)


def _static(name: str) -> bytes:
    return (resources.files("server") / "static" / name).read_bytes()


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The document for every endpoint registered on `app` so far."""
    return build_openapi(app[ENDPOINTS])


@api.get("/openapi.json", name="docs.openapi", auth=False, response=dict[str, Any],
         summary="This API as an OpenAPI 3.1 document")
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].openapi.response(request)


@api.get("/docs", name="docs.page", auth=False,
         summary="Browsable API documentation (an HTML page)",
         description="Works offline: it loads nothing but /openapi.json and its own files.")
async def docs_page(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].page.response(
        request, **{"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"})


async def _script(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].script.response(request)


async def _style(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].style.response(request)


def setup_openapi(app: web.Application) -> None:
    """Call last: the document covers the endpoints registered before startup."""
    api.register(app)
    app.router.add_get("/docs/docs.js", _script, name="docs.script")
    app.router.add_get("/docs/docs.css", _style, name="docs.style")

    async def prepare(app: web.Application) -> None:
        # At startup, not here: every area's routes are registered by then, whatever the
        # order of the setup_* calls.
        app[DOCS_ASSETS] = DocsAssets(
            openapi=Asset.of(msgspec.json.encode(openapi_document(app)), "application/json"),
            page=Asset.of(_static("docs.html"), "text/html"),
            script=Asset.of(_static("docs.js"), "text/javascript"),
            style=Asset.of(_static("docs.css"), "text/css"),
        )

    app.on_startup.append(prepare)
