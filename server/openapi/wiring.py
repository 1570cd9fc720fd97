"""Serve the API documents and the offline docs pages.

/openapi.json (OpenAPI 3.1: REST) and /asyncapi.json (AsyncAPI 3.0: Socket.IO) are generated
once, at startup (after every area has registered its endpoints), and served from memory.
/docs shows the first in Swagger UI, /docs/socket the second in the AsyncAPI React component;
both viewers are vendored under server/static/vendor/ (its README.md says what and how to
refresh), so no page loads anything from another origin, and their CSP forbids it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

import msgspec
from aiohttp import web

from server.http.endpoint import Endpoints
from server.http.static_files import (
    IMMUTABLE,
    Asset,
    content_type,
    files_handler,
    walk,
)
from server.keys import ENDPOINTS
from server.openapi.asyncapi import build_asyncapi
from server.openapi.generator import build_openapi

api = Endpoints("docs")
# Only our own files and requests to this origin. The AsyncAPI component validates the
# document with ajv, which compiles schemas to functions: 'unsafe-eval' on that page alone.
_CSP = ("default-src 'none'; script-src 'self'{eval}; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
REST_CSP = _CSP.format(eval="")
SOCKET_CSP = _CSP.format(eval=" 'unsafe-eval'")
VENDOR = "vendor"
OWN_ASSETS = ("docs.js", "docs.css", "docs-socket.js")  # served at /docs/<name>



@dataclass(frozen=True, slots=True)
class DocsAssets:
    openapi: Asset
    asyncapi: Asset
    rest_page: Asset
    socket_page: Asset
    files: Mapping[str, Asset]  # by their path under /docs/


DOCS_ASSETS = web.AppKey("docs_assets", DocsAssets)


def _static() -> Traversable:
    return resources.files("server") / "static"


def docs_files() -> dict[str, Asset]:
    """Every file the pages may load, by its path under /docs/: our own, revalidated, and the
    vendored ones (with their LICENSE files), cached for good."""
    static = _static()
    files = {name: Asset.of((static / name).read_bytes(), content_type(name))
             for name in OWN_ASSETS}
    vendor = static / VENDOR
    if not vendor.is_dir():  # e.g. a wheel whose package-data left it out
        raise FileNotFoundError(f"{vendor} is missing: the docs viewers are not installed")
    for path, entry in walk(vendor, f"{VENDOR}/"):
        files[path] = Asset.of(entry.read_bytes(), content_type(path), IMMUTABLE)
    return files


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The document for every endpoint registered on `app` so far."""
    return build_openapi(app[ENDPOINTS])


def _json(document: dict[str, Any]) -> Asset:
    return Asset.of(msgspec.json.encode(document), "application/json")


@api.get("/openapi.json", name="docs.openapi", auth=False, response=dict[str, Any],
         summary="This API as an OpenAPI 3.1 document")
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].openapi.response(request)


@api.get("/asyncapi.json", name="docs.asyncapi", auth=False, response=dict[str, Any],
         summary="The Socket.IO events as an AsyncAPI 3.0 document")
async def asyncapi_json(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].asyncapi.response(request)


@api.get("/docs", name="docs.page", auth=False,
         summary="Browsable REST API documentation (an HTML page: Swagger UI)",
         description="Works offline: it loads nothing but /openapi.json and its own files.")
async def docs_page(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].rest_page.response(
        request, **{"Content-Security-Policy": REST_CSP, "X-Content-Type-Options": "nosniff"})


@api.get("/docs/socket", name="docs.socket", auth=False,
         summary="Browsable Socket.IO documentation (an HTML page: AsyncAPI)",
         description="Works offline: it loads nothing but /asyncapi.json and its own files.")
async def docs_socket_page(request: web.Request) -> web.StreamResponse:
    return request.app[DOCS_ASSETS].socket_page.response(
        request, **{"Content-Security-Policy": SOCKET_CSP, "X-Content-Type-Options": "nosniff"})


def setup_openapi(app: web.Application) -> None:
    """Call last: the document covers the endpoints registered before startup."""
    api.register(app)
    # After the pages: /docs/socket is matched first.
    app.router.add_get("/docs/{path:.+}", files_handler(lambda app: app[DOCS_ASSETS].files),
                       name="docs.file")

    async def prepare(app: web.Application) -> None:
        # At startup, not here: every area's routes are registered by then, whatever the
        # order of the setup_* calls.
        static = _static()
        app[DOCS_ASSETS] = DocsAssets(
            openapi=_json(openapi_document(app)),
            asyncapi=_json(build_asyncapi()),
            rest_page=Asset.of((static / "docs.html").read_bytes(), "text/html"),
            socket_page=Asset.of((static / "docs-socket.html").read_bytes(), "text/html"),
            files=MappingProxyType(docs_files()),
        )

    app.on_startup.append(prepare)
