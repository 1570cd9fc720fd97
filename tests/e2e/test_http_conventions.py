"""HTTP conventions against real servers (issue 12): ETag / If-None-Match on posts, profiles
and media; RateLimit-Policy / RateLimit; CORS for REST and the same origins for Socket.IO.

The shared server runs with CORS_ALLOWED_ORIGINS unset (same origin only); a sibling server
allows APP and limits GET /v1/auth/me to 3 a minute."""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiohttp
import pytest
import socketio
from multidict import CIMultiDict

from tests.e2e.conftest import sibling_server
from tests.support.accounts import Account, signup
from tests.support.images import png
from tests.support.server import HubbubProcess

APP = "https://app.example"
EVIL = "https://evil.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture(scope="module")
def cors_server(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    with sibling_server(hubbub, CORS_ALLOWED_ORIGINS=APP,
                        RATE_LIMIT_ROUTES="auth.me=3") as server:
        yield server


async def get(http: aiohttp.ClientSession, path: str, who: Account,
              if_none_match: str | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    headers = dict(who.auth)
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    async with http.get(path, headers=headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


async def assert_conditional(http: aiohttp.ClientSession, path: str, who: Account) -> str:
    """The resource's ETag, after checking its caching headers and every form of
    If-None-Match that must match it."""
    status, headers, body = await get(http, path, who)
    assert status == 200, body
    etag = headers["ETag"]
    assert re.fullmatch(r'"[A-Za-z0-9_\-]+"', etag), etag
    assert headers["Cache-Control"] == "private, no-cache"
    assert "Authorization" in headers["Vary"]
    for condition in (etag, f"W/{etag}", f'"not-it", {etag}', "*"):
        status, headers, body = await get(http, path, who, condition)
        assert (status, body) == (304, b""), condition
        assert headers["ETag"] == etag
    status, headers, _ = await get(http, path, who, '"not-it", W/"nor-this"')
    assert status == 200 and headers["ETag"] == etag
    return etag


async def test_a_post_revalidates_and_changes_its_etag_when_liked(
        http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "etag"), await signup(http, "etag")
    async with http.post("/v1/posts", headers=ann.auth, json={"text": "cache me"}) as response:
        assert response.status == 201
        post_id = (await response.json())["id"]
    path = f"/v1/posts/{post_id}"
    etag = await assert_conditional(http, path, bob)
    async with http.post(f"{path}/like", headers=bob.auth) as response:
        assert response.status == 200
    status, headers, body = await get(http, path, bob, etag)
    assert status == 200 and headers["ETag"] != etag
    assert b'"like_count":1' in body


async def test_a_profile_revalidates_and_changes_its_etag_when_edited(
        http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "etag"), await signup(http, "etag")
    path = f"/v1/users/@{ann.username}"
    etag = await assert_conditional(http, path, bob)
    async with http.patch("/v1/users/me", headers=ann.auth,
                          json={"display_name": "Ann Edited"}) as response:
        assert response.status == 200
    status, headers, body = await get(http, path, bob, etag)
    assert status == 200 and headers["ETag"] != etag and b"Ann Edited" in body


async def test_media_metadata_revalidates_and_changes_its_etag_when_ready(
        http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "etag")
    data = png(20, 10)
    async with http.post("/v1/media/uploads", headers=ann.auth,
                         json={"content_type": "image/png", "size": len(data)}) as response:
        assert response.status == 201
        ticket = await response.json()
    path = f"/v1/media/{ticket['id']}"
    etag = await assert_conditional(http, path, ann)  # pending: no URL yet
    async with http.put(ticket["upload_url"], data=data, headers=ticket["headers"]) as response:
        assert response.status == 204
    async with http.post(f"{path}/complete", headers=ann.auth) as response:
        assert response.status == 200
    status, headers, body = await get(http, path, ann, etag)
    assert status == 200 and headers["ETag"] != etag and b'"status":"ready"' in body


def parse_list(field: str) -> dict[str, dict[str, int]]:
    """An RFC 9651 list of `"name";k=v;...` items with integer parameters."""
    items = {}
    for member in field.split(","):
        match = re.fullmatch(r'\s*"([^"]+)"((?:;[a-z]+=\d+)+)\s*', member)
        assert match, field
        items[match.group(1)] = {k: int(v) for k, v in
                                 re.findall(r";([a-z]+)=(\d+)", match.group(2))}
    return items


async def test_ratelimit_fields_count_down_to_a_429(cors_server: HubbubProcess) -> None:
    async with aiohttp.ClientSession(base_url=cors_server.base_url) as http:
        ann = await signup(http, "limits")
        remaining = []
        for _ in range(3):
            async with http.get("/v1/auth/me", headers=ann.auth) as response:
                assert response.status == 200
                policy = parse_list(response.headers["RateLimit-Policy"])
                assert policy["auth.me"] == {"q": 3, "w": 60}
                assert policy["default"]["w"] == 60
                remaining.append(parse_list(response.headers["RateLimit"])["auth.me"]["r"])
        assert remaining == [2, 1, 0]
        async with http.get("/v1/auth/me", headers=ann.auth) as response:
            assert response.status == 429
            retry_after = int(response.headers["Retry-After"])
            assert parse_list(response.headers["RateLimit"])["auth.me"] == {
                "r": 0, "t": retry_after}
            assert "auth.me" in parse_list(response.headers["RateLimit-Policy"])


async def test_cors_preflight_and_responses_for_an_allowed_origin(
        cors_server: HubbubProcess) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"}
    async with aiohttp.ClientSession(base_url=cors_server.base_url) as http:
        async with http.options("/v1/posts", headers={"Origin": APP, **preflight}) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == APP
            assert {"GET", "POST"} <= set(
                response.headers["Access-Control-Allow-Methods"].replace(" ", "").split(","))
            allowed = response.headers["Access-Control-Allow-Headers"].lower()
            assert all(h in allowed for h in ("authorization", "content-type",
                                              "idempotency-key", "if-none-match"))
            assert int(response.headers["Access-Control-Max-Age"]) > 0
            assert "Origin" in response.headers["Vary"]
        async with http.options("/v1/posts", headers={"Origin": EVIL, **preflight}) as response:
            assert response.status == 403
            assert response.content_type == "application/problem+json"
            assert (await response.json())["code"] == "origin_not_allowed"
        # An actual request, and a problem: both readable by the allowed origin's page.
        async with http.get("/v1/posts", headers={"Origin": APP}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == APP
            exposed = response.headers["Access-Control-Expose-Headers"]
            for name in ("ETag", "RateLimit", "RateLimit-Policy", "Retry-After", "Location",
                         "X-Request-ID"):
                assert name in exposed
        async with http.get("/v1/posts", headers={"Origin": EVIL}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_no_cors_by_default(http: aiohttp.ClientSession) -> None:
    async with http.options("/v1/posts", headers={
            "Origin": APP, "Access-Control-Request-Method": "POST"}) as response:
        assert response.status == 403
    async with http.get("/v1/posts", headers={"Origin": APP}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def handshake(base_url: str, origin: str | None) -> int:
    """The websocket handshake's status: 101 when Engine.IO takes it (it then sends its
    open packet), else what it refused it with."""
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession(base_url=base_url) as http:
        try:
            async with http.ws_connect(HANDSHAKE, headers=headers) as ws:
                opened = await ws.receive_str(timeout=10)
                assert opened.startswith("0{"), opened
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


async def test_socketio_takes_same_origin_pages_only_by_default(hubbub: HubbubProcess) -> None:
    assert await handshake(hubbub.base_url, EVIL) == 400
    assert await handshake(hubbub.base_url, APP) == 400
    assert await handshake(hubbub.base_url, hubbub.base_url) == 101  # its own pages
    assert await handshake(hubbub.base_url, None) == 101  # apps and bundled clients


async def test_socketio_takes_the_allowed_origins(cors_server: HubbubProcess) -> None:
    assert await handshake(cors_server.base_url, APP) == 101
    assert await handshake(cors_server.base_url, EVIL) == 400
    async with aiohttp.ClientSession(base_url=cors_server.base_url) as http:
        ann = await signup(http, "origin")
    for origin, connects in ((APP, True), (EVIL, False)):
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(cors_server.base_url, auth={"token": ann.token},
                                 headers={"Origin": origin}, transports=["websocket"],
                                 wait_timeout=10)
            assert connects and client.connected, origin
        except socketio.exceptions.ConnectionError:
            assert not connects, origin
        finally:
            await client.disconnect()
