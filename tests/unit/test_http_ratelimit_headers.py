"""RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers): the field syntax,
and the fields on a real localhost server's responses, 429s and other problems included."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocols.ops import Health
from protocols.ratelimit import RateDecision
from server.config import load_settings
from server.http.endpoint import Endpoints
from server.http.middleware import problem_details
from server.http.problems import NotFound
from server.keys import ENDPOINTS, LIFECYCLE, SETTINGS
from server.lifecycle import Lifecycle
from server.ratelimit.headers import Spent, effective_window, policy_field, ratelimit_field
from server.ratelimit.wiring import rate_limit_middleware, setup_ratelimit

# One RFC 9651 list member: an sf-string with integer parameters.
ITEM = re.compile(r'^"(?P<name>[^"\\]+)"(?P<params>(?:;[a-z]+=\d+)+)$')


def parse(field: str) -> dict[str, dict[str, int]]:
    """A RateLimit / RateLimit-Policy value as {policy: {param: int}}; fails on bad syntax."""
    items: dict[str, dict[str, int]] = {}
    for member in field.split(","):
        match = ITEM.match(member.strip())
        assert match, f"not an sf-list item: {member!r} in {field!r}"
        params = match.group("params").lstrip(";").split(";")
        items[match.group("name")] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return items


def test_fields_are_structured_lists() -> None:
    assert policy_field([("default", 100), ("posts.create", 10)]) == (
        '"default";q=100;w=60, "posts.create";q=10;w=60')
    spent = [Spent("default", RateDecision(allowed=True, limit=100, remaining=42)),
             Spent("posts.create", RateDecision(allowed=False, limit=10, remaining=0,
                                                retry_after=5.2))]
    assert ratelimit_field(spent) == '"default";r=42;t=35, "posts.create";r=0;t=6'


@pytest.mark.parametrize(("decision", "seconds"), [
    (RateDecision(allowed=True, limit=60, remaining=60), 0),  # full
    (RateDecision(allowed=True, limit=60, remaining=59), 1),
    (RateDecision(allowed=True, limit=3, remaining=0), 60),
    (RateDecision(allowed=True, limit=1000, remaining=999), 1),
    (RateDecision(allowed=False, limit=3, remaining=0, retry_after=19.5), 20),
    (RateDecision(allowed=False, limit=1000, remaining=0, retry_after=0.01), 1),
])
def test_effective_window(decision: RateDecision, seconds: int) -> None:
    assert effective_window(decision) == seconds


api = Endpoints("sample")


@api.get("/v1/things", name="things.list", auth=False, response=Health, summary="List")
async def things(request: web.Request) -> Health:
    return Health(status="ok")


@api.post("/v1/things", name="things.create", auth=False, response=Health, rate_limit=2,
          summary="Create")
async def create_thing(request: web.Request) -> Health:
    return Health(status="created")


@api.get("/v1/missing", name="things.missing", auth=False, response=Health, summary="404")
async def missing(request: web.Request) -> Health:
    raise NotFound()


@api.get("/probe", name="ops.probe", auth=False, response=Health, summary="Probe")
async def probe(request: web.Request) -> Health:
    return Health(status="ok")


@asynccontextmanager
async def serve(per_minute: int) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[problem_details, rate_limit_middleware])
    app[SETTINGS] = load_settings({"RATE_LIMIT_PER_MINUTE": str(per_minute)})
    app[LIFECYCLE] = Lifecycle(node_id="test")
    app[ENDPOINTS] = []
    now = 0.0
    setup_ratelimit(app, clock=lambda: now)  # time stands still: no token comes back
    api.register(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_remaining_decreases_then_a_429_says_when() -> None:
    async with serve(3) as client:
        seen = []
        for _ in range(3):
            async with client.get("/v1/things") as r:
                assert r.status == 200
                assert parse(r.headers["RateLimit-Policy"]) == {"default": {"q": 3, "w": 60}}
                seen.append(parse(r.headers["RateLimit"])["default"])
        assert [s["r"] for s in seen] == [2, 1, 0]
        assert [s["t"] for s in seen] == [20, 40, 60]  # until the bucket is full again
        async with client.get("/v1/things") as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "20"
            assert parse(r.headers["RateLimit"]) == {"default": {"r": 0, "t": 20}}
            assert parse(r.headers["RateLimit-Policy"]) == {"default": {"q": 3, "w": 60}}
            assert r.headers["RateLimit-Remaining"] == "0"


async def test_a_route_bucket_is_a_policy_of_its_own() -> None:
    async with serve(100) as client:
        async with client.post("/v1/things") as r:
            assert parse(r.headers["RateLimit-Policy"]) == {
                "default": {"q": 100, "w": 60}, "things.create": {"q": 2, "w": 60}}
            limits = parse(r.headers["RateLimit"])
            assert limits["default"]["r"] == 99 and limits["things.create"]["r"] == 1
            # The older fields describe the tightest bucket.
            assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == ("2", "1")
        async with client.post("/v1/things") as r:
            assert r.status == 200
        async with client.post("/v1/things") as r:
            assert r.status == 429
            limits = parse(r.headers["RateLimit"])
            assert limits["things.create"] == {"r": 0, "t": int(r.headers["Retry-After"])}
            assert limits["default"]["r"] == 97


async def test_other_problems_carry_the_fields_and_exempt_routes_none() -> None:
    async with serve(100) as client:
        async with client.get("/v1/missing") as r:
            assert r.status == 404 and parse(r.headers["RateLimit"])["default"]["r"] == 99
        async with client.get("/probe") as r:
            assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers
        async with client.get("/v1/nowhere") as r:
            assert r.status == 404 and "RateLimit" not in r.headers
