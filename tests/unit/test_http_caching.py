"""ETag and If-None-Match (server.http.caching), and an `etag=True` endpoint on a real
localhost server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from protocols.ops import Health
from server.auth.principal import Principal
from server.http.caching import CACHE_CONTROL, add_vary, etag_of, none_match
from server.http.endpoint import Endpoints
from server.http.middleware import problem_details
from server.http.problems import NotFound
from server.keys import AUTHENTICATOR, ENDPOINTS

TAG = etag_of(b'{"status":"ok"}')


def test_etag_is_a_strong_quoted_tag_of_the_bytes() -> None:
    assert TAG.startswith('"') and TAG.endswith('"') and not TAG.startswith("W/")
    assert etag_of(b'{"status":"ok"}') == TAG
    assert etag_of(b'{"status":"ko"}') != TAG


@pytest.mark.parametrize(("header", "matches"), [
    (None, False),
    ("", False),
    (TAG, True),
    ("W/" + TAG, True),  # weak comparison
    ("*", True),
    (" * ", True),
    (f'"other", {TAG}', True),
    (f'W/"other",W/{TAG}', True),
    (f' , "other" ,, {TAG} ,', True),  # empty list elements are allowed
    ('"other"', False),
    ('"other", W/"more"', False),
    (TAG.strip('"'), False),  # unquoted: malformed, ignored
    (f"{TAG} garbage", False),
    ('"other", *', False),  # `*` only alone
])
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, TAG) is matches


def test_a_long_malformed_header_is_refused_quickly() -> None:
    assert none_match(", " * 4000 + "x", TAG) is False


def test_vary_adds_each_name_once() -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    add_vary(headers, "Origin")
    add_vary(headers, "authorization", "Origin")
    add_vary(headers, "Authorization")
    assert headers["Vary"] == "Origin, authorization"


api = Endpoints("sample")
STATE = web.AppKey("state", dict)


@api.get("/things/{id}", name="things.get", auth=False, response=Health, etag=True,
         summary="A thing")
async def get_thing(request: web.Request) -> Health:
    status = request.app[STATE].get(request.match_info["id"])
    if status is None:
        raise NotFound()
    return Health(status=status)


@api.get("/mine", name="things.mine", response=Health, etag=True, summary="Mine")
async def get_mine(request: web.Request, principal: Principal) -> Health:
    return Health(status=principal.user_id)


def authenticate(token: str) -> Principal:
    return Principal(user_id=token, role="user", token_id=token, expires_at=2**40)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[problem_details])
    app[ENDPOINTS] = []
    app[STATE] = {"a": "ok"}
    app[AUTHENTICATOR] = authenticate
    api.register(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_an_etag_endpoint_answers_304_when_the_tag_matches(client: TestClient) -> None:
    async with client.get("/things/a") as response:
        assert response.status == 200
        etag = response.headers["ETag"]
        assert etag == etag_of(await response.read())
        assert response.headers["Cache-Control"] == CACHE_CONTROL
        assert "Vary" not in response.headers  # no auth: the same for every caller
    for condition in (etag, "W/" + etag, f'"stale", {etag}', "*"):
        async with client.get("/things/a", headers={"If-None-Match": condition}) as response:
            assert response.status == 304, condition
            assert await response.read() == b""
            assert response.headers["ETag"] == etag
            assert response.headers["Cache-Control"] == CACHE_CONTROL
    async with client.get("/things/a", headers={"If-None-Match": '"stale"'}) as response:
        assert response.status == 200 and response.headers["ETag"] == etag


async def test_a_changed_resource_gets_200_with_a_new_etag(client: TestClient) -> None:
    async with client.get("/things/a") as response:
        old = response.headers["ETag"]
    client.app[STATE]["a"] = "changed"
    async with client.get("/things/a", headers={"If-None-Match": old}) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "changed"
        assert response.headers["ETag"] not in (old, "")


async def test_errors_carry_no_etag_and_star_does_not_hide_them(client: TestClient) -> None:
    async with client.get("/things/missing", headers={"If-None-Match": "*"}) as response:
        assert response.status == 404
        assert "ETag" not in response.headers


async def test_a_body_that_depends_on_the_caller_varies_by_authorization(
        client: TestClient) -> None:
    tags = []
    for user in ("ann", "bob"):
        async with client.get("/mine", headers={"Authorization": f"Bearer {user}"}) as response:
            assert response.status == 200
            assert response.headers["Vary"] == "Authorization"
            assert response.headers["Cache-Control"] == "private, no-cache"
            tags.append(response.headers["ETag"])
    assert tags[0] != tags[1]
    async with client.get("/mine", headers={"Authorization": "Bearer ann",
                                            "If-None-Match": tags[0]}) as response:
        assert response.status == 304 and response.headers["Vary"] == "Authorization"
    async with client.get("/mine", headers={"Authorization": "Bearer bob",
                                            "If-None-Match": tags[0]}) as response:
        assert response.status == 200
