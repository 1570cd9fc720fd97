"""OpenAPI, the docs page and rate limiting, against real server processes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.conftest import sibling_server
from tests.support.server import HubbubProcess

ANY_ID = "01890a5d-ac96-774b-bcce-b302099a8057"

# Every REST operation of the contract (shared/API.md). Areas land one by one; whichever of
# these the server already routes must be in the document.
CONTRACT = [
    ("POST", "/v1/auth/signup"), ("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"), ("POST", "/v1/auth/password/forgot"),
    ("POST", "/v1/auth/password/reset"), ("GET", "/v1/auth/me"),
    ("GET", "/v1/users/{id}"), ("PATCH", "/v1/users/me"),
    ("POST", "/v1/users/{id}/follow"), ("DELETE", "/v1/users/{id}/follow"),
    ("GET", "/v1/users/{id}/followers"), ("GET", "/v1/users/{id}/following"),
    ("GET", "/v1/users/{id}/posts"), ("GET", "/v1/users/{id}/stats"),
    ("POST", "/v1/users/{id}/block"), ("DELETE", "/v1/users/{id}/block"),
    ("POST", "/v1/users/{id}/mute"), ("DELETE", "/v1/users/{id}/mute"),
    ("POST", "/v1/media"), ("POST", "/v1/media/uploads"), ("POST", "/v1/media/{id}/complete"),
    ("POST", "/v1/posts"), ("GET", "/v1/posts"), ("GET", "/v1/posts/{id}"),
    ("DELETE", "/v1/posts/{id}"), ("POST", "/v1/posts/{id}/like"),
    ("DELETE", "/v1/posts/{id}/like"), ("GET", "/v1/posts/{id}/likes"),
    ("POST", "/v1/posts/{id}/repost"), ("DELETE", "/v1/posts/{id}/repost"),
    ("POST", "/v1/posts/{id}/comments"), ("GET", "/v1/posts/{id}/comments"),
    ("GET", "/v1/posts/{id}/metrics"),
    ("GET", "/v1/posts/{id}/analytics"), ("GET", "/v1/users/me/best_times"),
    ("GET", "/v1/feed"), ("GET", "/v1/feed/popular"),
    ("GET", "/v1/notifications"), ("GET", "/v1/notifications/unread_count"),
    ("POST", "/v1/notifications/read"),
    ("POST", "/v1/rooms"), ("GET", "/v1/rooms"), ("GET", "/v1/rooms/{id}"),
    ("POST", "/v1/rooms/{id}/members"), ("DELETE", "/v1/rooms/{id}/members"),
    ("GET", "/v1/rooms/{id}/messages"), ("POST", "/v1/rooms/{id}/messages"),
    ("GET", "/v1/calls/ice-servers"), ("GET", "/v1/calls/{id}"),
    ("POST", "/v1/scheduled_posts"), ("GET", "/v1/scheduled_posts"),
    ("GET", "/v1/scheduled_posts/{id}"), ("PATCH", "/v1/scheduled_posts/{id}"),
    ("DELETE", "/v1/scheduled_posts/{id}"), ("POST", "/v1/scheduled_posts/{id}/publish"),
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/info"),
    ("GET", "/openapi.json"), ("GET", "/docs"),
]
ALWAYS_THERE = {("GET", "/health"), ("GET", "/ready"), ("GET", "/info"),
                ("GET", "/openapi.json"), ("GET", "/docs")}
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.\-]*:|//)", re.IGNORECASE)


async def routed(http: aiohttp.ClientSession, method: str, path: str) -> bool:
    """Whether the server has a route for this operation: anything but the router's own
    404 ("No route for ...") or 405. No token and no body, so nothing is changed."""
    async with http.request(method, path.replace("{id}", ANY_ID)) as response:
        if response.status == 405:
            return False
        if response.status == 404:
            body = await response.json()
            return not str(body.get("detail", "")).startswith("No route for")
        return True


@pytest_asyncio.fixture
async def document(http: aiohttp.ClientSession) -> dict:
    async with http.get("/openapi.json") as response:
        assert response.status == 200 and response.content_type == "application/json"
        return await response.json()


async def test_openapi_lists_every_routed_operation(
    http: aiohttp.ClientSession, document: dict
) -> None:
    assert document["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item}
    present = {op for op in CONTRACT if await routed(http, *op)}
    assert present >= ALWAYS_THERE
    assert present <= documented, f"routed but undocumented: {present - documented}"
    # And the other way: everything documented is really routed.
    for method, path in sorted(documented):
        assert await routed(http, method, path), f"{method} {path} is documented, not routed"


async def test_openapi_is_served_with_an_etag(http: aiohttp.ClientSession) -> None:
    async with http.get("/openapi.json") as response:
        etag = response.headers["ETag"]
    async with http.get("/openapi.json", headers={"If-None-Match": etag}) as response:
        assert response.status == 304


async def test_docs_page_is_self_contained(http: aiohttp.ClientSession) -> None:
    async with http.get("/docs") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        html = await response.text()
    assert "/openapi.json" in html
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, re.IGNORECASE)
    assert links
    local = []
    for link in links:
        if link.startswith("data:"):
            continue
        assert not EXTERNAL.match(link), f"external reference {link!r}"
        local.append(link)
    assert "/docs/docs.js" in local and "/docs/docs.css" in local
    for link in local:
        async with http.get(link) as response:
            assert response.status == 200, link
            text = await response.text()
            if not link.startswith("/docs/vendor/"):
                # Vendored bundles name URLs (SVG namespaces, licences) they never fetch;
                # tests/e2e/test_docs_pages.py checks what the pages load.
                assert "http://" not in text and "https://" not in text, link


async def test_shared_server_limits_through_redis(http: aiohttp.ClientSession) -> None:
    async with http.get("/info") as response:
        assert (await response.json())["adapters"]["rate_limit"] == "redis"
    async with http.get("/openapi.json") as response:
        assert int(response.headers["RateLimit-Limit"]) == 100000
        assert int(response.headers["RateLimit-Remaining"]) < 100000


@pytest.fixture
def strict_server(hubbub: HubbubProcess, clean_redis_prefix: str) -> Iterator[HubbubProcess]:
    """A second server allowing 5 requests per minute per client (and the routes' own)."""
    with sibling_server(hubbub, REDIS_KEY_PREFIX=clean_redis_prefix,
                        RATE_LIMIT_PER_MINUTE="5", RATE_LIMIT_ROUTES="") as server:
        yield server


async def test_the_sixth_request_in_a_minute_is_429(strict_server: HubbubProcess) -> None:
    async with aiohttp.ClientSession(base_url=strict_server.base_url) as http:
        # A bad login still spends a token; if auth has not landed, the route is unmatched
        # (exempt), so fall back to another rate-limited route.
        login = ("POST", "/v1/auth/login", {"json": {"identifier": ""}})
        method, path, kwargs = login
        async with http.request(method, path, **kwargs) as response:
            first = response.status
            if first == 404:
                method, path, kwargs = "GET", "/openapi.json", {}
        statuses = [first] if path == login[1] else []
        while len(statuses) < 5:
            async with http.request(method, path, **kwargs) as response:
                statuses.append(response.status)
        assert 429 not in statuses
        async with http.request(method, path, **kwargs) as response:
            assert response.status == 429
            assert response.content_type == "application/problem+json"
            body = await response.json()
            assert body["code"] == "rate_limited" and body["status"] == 429
            assert int(response.headers["Retry-After"]) >= 1
        # Probes and unmatched paths are never limited.
        async with http.get("/health") as response:
            assert response.status == 200
        async with http.get("/v1/nowhere") as response:
            assert response.status == 404
