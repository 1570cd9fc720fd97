"""The docs pages (/docs: Swagger UI on /openapi.json; /docs/socket: the AsyncAPI component on
/asyncapi.json) and /asyncapi.json, against a real server process: every asset is local and
served with its content type and cache headers."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import aiohttp
import pytest

from protocols.socket import CLIENT_EVENTS, SERVER_EVENTS

PAGES = {"/docs": "/openapi.json", "/docs/socket": "/asyncapi.json"}
LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.\-]*:|//)", re.IGNORECASE)
TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
IMMUTABLE = "public, max-age=31536000, immutable"


async def page_links(http: aiohttp.ClientSession, page: str) -> list[str]:
    async with http.get(page) as response:
        assert response.status == 200 and response.content_type == "text/html", page
        csp = response.headers["Content-Security-Policy"]
        html = await response.text()
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "script-src 'self'" in csp and "style-src 'self';" in csp
    links = [link for link in LINK.findall(html) if not link.startswith("data:")]
    external = [link for link in links if EXTERNAL.match(link)]
    assert not external, f"{page} references {external}"
    return links


@pytest.mark.parametrize("page", PAGES)
async def test_page_references_only_local_assets_that_are_served(
        http: aiohttp.ClientSession, page: str) -> None:
    links = await page_links(http, page)
    assert PAGES[page] in links and set(PAGES.values()) <= set(links)
    assets = [link for link in links if link.endswith((".js", ".css"))]
    assert any("/docs/vendor/" in a for a in assets if a.endswith(".js"))
    assert any("/docs/vendor/" in a for a in assets if a.endswith(".css"))
    for link in links:
        async with http.get(link) as response:
            assert response.status == 200, link
            expected = "text/html" if link in PAGES else TYPES[PurePosixPath(link).suffix]
            assert response.content_type == expected, link
            etag = response.headers["ETag"]
            cache = response.headers["Cache-Control"]
            vendored = link.startswith("/docs/vendor/")
            assert cache == (IMMUTABLE if vendored else "no-cache")
            body = await response.text()
            assert body
            if link.startswith("/docs") and not vendored:  # ours; upstream bundles name
                # XML namespaces and licences in URLs (CSP keeps the page on this origin)
                assert "http://" not in body and "https://" not in body, link
        async with http.get(link, headers={"If-None-Match": etag}) as response:
            assert response.status == 304, link


async def test_the_socket_page_alone_may_eval(http: aiohttp.ClientSession) -> None:
    # The AsyncAPI bundle compiles schemas (ajv); Swagger UI needs no such allowance.
    async with http.get("/docs") as response:
        assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    async with http.get("/docs/socket") as response:
        assert "'unsafe-eval'" in response.headers["Content-Security-Policy"]


async def test_vendored_licences_are_served(http: aiohttp.ClientSession) -> None:
    links = [link for page in PAGES for link in await page_links(http, page)]
    folders = {link.split("/")[3] for link in links if link.startswith("/docs/vendor/")}
    assert len(folders) == 2
    for folder in folders:
        async with http.get(f"/docs/vendor/{folder}/LICENSE") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            assert "Apache License" in await response.text()
    async with http.get("/docs/vendor/README.md") as response:
        assert response.status == 200 and response.content_type == "text/markdown"


async def test_unknown_docs_files_are_404(http: aiohttp.ClientSession) -> None:
    for path in ("/docs/nope.js", "/docs/vendor/", "/docs/vendor/../docs.html"):
        async with http.get(path) as response:
            assert response.status == 404, path


async def test_asyncapi_json_is_served(http: aiohttp.ClientSession) -> None:
    async with http.get("/asyncapi.json") as response:
        assert response.status == 200 and response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
        document = await response.json()
    async with http.get("/asyncapi.json", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    assert document["asyncapi"] == "3.0.0"
    events = {(op["action"], op["title"]) for op in document["operations"].values()}
    assert {("send", e) for e in CLIENT_EVENTS} <= events
    assert {("receive", e) for e in SERVER_EVENTS} <= events


async def test_openapi_lists_the_docs_routes(http: aiohttp.ClientSession) -> None:
    async with http.get("/openapi.json") as response:
        paths = (await response.json())["paths"]
    for path in ("/openapi.json", "/asyncapi.json", "/docs", "/docs/socket"):
        assert paths[path]["get"]["operationId"].startswith("docs."), path
    assert not any(path.startswith("/docs/vendor") for path in paths)
