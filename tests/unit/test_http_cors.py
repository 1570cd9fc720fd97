"""CORS (server.http.cors) on a real localhost server, the setting's parsing, and the origin
check handed to python-socketio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocols.ops import Health
from server.config import ConfigError, load_settings
from server.http.cors import (
    EXPOSED_HEADERS,
    MAX_AGE,
    CorsPolicy,
    SameOriginOr,
    cors_middleware,
    socketio_origins,
)
from server.http.endpoint import Endpoints
from server.http.middleware import problem_details
from server.http.problems import NotFound
from server.keys import ENDPOINTS

APP = "https://app.example"
EVIL = "https://evil.example"
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}

api = Endpoints("sample")


@api.get("/v1/things", name="things.list", auth=False, response=Health, summary="List")
async def things(request: web.Request) -> Health:
    return Health(status="ok")


@api.post("/v1/things", name="things.create", auth=False, response=Health, status=201,
          summary="Create")
async def create_thing(request: web.Request) -> Health:
    return Health(status="created")


@api.get("/v1/missing", name="things.missing", auth=False, response=Health, summary="404")
async def missing(request: web.Request) -> Health:
    raise NotFound("No such thing", code="thing_not_found")


@asynccontextmanager
async def serve(origins: str) -> AsyncIterator[TestClient]:
    policy = CorsPolicy.from_settings(load_settings({"CORS_ALLOWED_ORIGINS": origins}))
    app = web.Application(middlewares=[cors_middleware(policy), problem_details])
    app[ENDPOINTS] = []
    api.register(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_a_preflight_from_an_allowed_origin_is_answered() -> None:
    async with (serve(f"{APP},http://localhost:5173") as client,
                client.options("/v1/things", headers={"Origin": APP, **PREFLIGHT}) as r):
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == APP
        assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
        allowed = {h.strip().lower()
                   for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key", "if-none-match"} <= allowed
        assert r.headers["Access-Control-Max-Age"] == str(MAX_AGE)
        assert r.headers["Vary"] == "Origin"
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert await r.read() == b""


@pytest.mark.parametrize("origins", ["https://app.example", ""])
async def test_a_preflight_from_another_origin_is_403(origins: str) -> None:
    async with (serve(origins) as client,
                client.options("/v1/things", headers={"Origin": EVIL, **PREFLIGHT}) as r):
        assert r.status == 403
        assert r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_a_preflight_for_no_route_is_404_and_a_plain_options_is_405() -> None:
    async with serve(APP) as client:
        async with client.options("/v1/nowhere", headers={"Origin": APP, **PREFLIGHT}) as r:
            assert r.status == 404
        async with client.options("/v1/things") as r:  # not a preflight
            assert r.status == 405


async def test_responses_to_an_allowed_origin_carry_cors_headers() -> None:
    async with serve(APP) as client:
        for method, path, status in (("GET", "/v1/things", 200), ("POST", "/v1/things", 201),
                                     ("GET", "/v1/missing", 404)):
            async with client.request(method, path, headers={"Origin": APP}) as r:
                assert r.status == status
                assert r.headers["Access-Control-Allow-Origin"] == APP
                exposed = {h.strip() for h in r.headers["Access-Control-Expose-Headers"]
                           .split(",")}
                assert exposed == set(EXPOSED_HEADERS)
                assert {"ETag", "RateLimit", "RateLimit-Policy", "Retry-After",
                        "X-Request-ID"} <= exposed
                assert "Origin" in r.headers["Vary"]


async def test_other_origins_are_served_without_cors_headers() -> None:
    async with serve(APP) as client:
        async with client.get("/v1/things", headers={"Origin": EVIL}) as r:
            assert r.status == 200  # CORS is not access control: the browser withholds it
            assert "Access-Control-Allow-Origin" not in r.headers
            assert r.headers["Vary"] == "Origin"
        async with client.get("/v1/things") as r:
            assert "Access-Control-Allow-Origin" not in r.headers
            assert r.headers["Vary"] == "Origin"  # a cache must not reuse it for APP


async def test_no_setting_means_no_cors_headers_at_all() -> None:
    async with serve("") as client, client.get("/v1/things", headers={"Origin": APP}) as r:
        assert r.status == 200
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert "Vary" not in r.headers


async def test_any_origin() -> None:
    async with serve("*") as client:
        async with client.options("/v1/things", headers={"Origin": EVIL, **PREFLIGHT}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with client.get("/v1/things", headers={"Origin": EVIL}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(("raw", "parsed"), [
    ("", ()),
    (" , ", ()),
    ("*", ("*",)),
    ("https://App.Example, http://localhost:5173,https://app.example",
     ("https://app.example", "http://localhost:5173")),
])
def test_setting_parses(raw: str, parsed: tuple[str, ...]) -> None:
    assert load_settings({"CORS_ALLOWED_ORIGINS": raw}).cors_origins() == parsed


@pytest.mark.parametrize("raw", ["https://app.example/", "app.example", "*,https://a.example",
                                 "https://app.example/path", "https://user@app.example"])
def test_setting_refuses_what_is_not_an_origin(raw: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        load_settings({"CORS_ALLOWED_ORIGINS": raw})


def _socket_check(raw: str) -> Callable[[str | None, dict[str, str]], bool]:
    check = socketio_origins(load_settings({"CORS_ALLOWED_ORIGINS": raw}))
    assert isinstance(check, SameOriginOr)
    return check


def test_socketio_takes_listed_and_same_origin_pages_only() -> None:
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "hubbub.local:8080"}
    listed = _socket_check(APP)
    assert listed(APP, environ) and listed(APP.upper(), environ)
    assert listed("http://hubbub.local:8080", environ)  # its own pages
    assert listed(None, environ)  # not a browser: no Origin to check
    assert not listed(EVIL, environ)
    proxied = {**environ, "HTTP_X_FORWARDED_PROTO": "https",
               "HTTP_X_FORWARDED_HOST": "chat.example"}
    assert listed("https://chat.example", proxied)
    unset = _socket_check("")
    assert unset("http://hubbub.local:8080", environ) and not unset(APP, environ)
    assert socketio_origins(load_settings({"CORS_ALLOWED_ORIGINS": "*"})) == "*"
