"""`GET /v1/feed` through the whole app (create_app on a real Postgres, its own database) while
the home feed's stores fail: the timeline store is made to raise (as the Redis adapter does
when Redis is unreachable), the circuit breaker opens, and the feed answers the popular
ranking with `degraded: true` and `Hubbub-Degraded: feed`; with the popular ranking gone too
it is 503 problem+json with Retry-After; once the stores work again the breaker's trial
closes it by itself (a short cooldown, polled for)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import load_settings
from server.feed.wiring import FEED_SERVICE
from storage.errors import StorageError
from tests.support.accounts import Account, signup
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

FAILURES = 2
COOLDOWN = 0.3


class Switch:
    """Wraps a store: while `down`, every call raises `error()`."""

    def __init__(self, inner: Any, error: Callable[[], Exception]) -> None:
        self.inner = inner
        self.error = error
        self.down = False

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise self.error()
            return await method(*args, **kwargs)
        return call


async def test_failing_timelines_degrade_the_home_feed_to_popular_and_it_recovers(
        admin_pg_dsn: str, tmp_path: Path) -> None:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_feed_degraded")
    try:
        app = create_app(load_settings({
            "DATABASE_URL": dsn, "JWT_SECRET": "x" * 32, "DATA_DIR": str(tmp_path),
            "FEED_BREAKER_FAILURES": str(FAILURES),
            "FEED_BREAKER_COOLDOWN_SECONDS": str(COOLDOWN)}))
        async with TestServer(app) as server, TestClient(server) as http:
            await _scenario(app, http)
    finally:
        await drop_database(admin_pg_dsn, dsn)


async def _scenario(app: Any, http: TestClient) -> None:
    ann, bob, carol = [await signup(http, "deg") for _ in range(3)]  # type: ignore[arg-type]
    await _call(http, "POST", f"/v1/users/{bob.id}/follow", ann, 200)
    home_post = (await _call(http, "POST", "/v1/posts", bob, 201, {"text": "for ann"}))["id"]
    hot = (await _call(http, "POST", "/v1/posts", carol, 201, {"text": "hot"}))["id"]
    await _call(http, "POST", f"/v1/posts/{hot}/like", bob, 200)

    page = await _feed(http, ann)
    assert [p["id"] for p in page["items"]] == [home_post] and page["degraded"] is False

    # The timeline store fails, and so do the ranking cache and the ranking's query (the
    # service's own stores, wrapped in place: nothing else of the app is touched).
    service = app[FEED_SERVICE]
    timelines = Switch(service._timelines, lambda: StorageError("timeline store unavailable"))
    rankings = Switch(service._rankings, lambda: StorageError("ranking cache unavailable"))
    ranking_query = Switch(service._source, lambda: ConnectionRefusedError(111, "refused"))
    service._timelines, service._rankings = timelines, rankings
    service._source.popular = ranking_query.popular
    timelines.down = rankings.down = ranking_query.down = True

    for _ in range(FAILURES):  # closed: answered from Postgres alone, counted as failures
        page = await _feed(http, ann)
        assert page["degraded"] is False and [p["id"] for p in page["items"]] == [home_post]
    # Open: the popular ranking is the fallback, but it cannot be had either.
    async with http.get("/v1/feed", headers=_auth(ann)) as response:
        problem = await response.json(content_type=None)
        assert response.status == 503, problem
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert int(response.headers["Retry-After"]) >= 1
        assert problem["code"] == "unavailable"

    # The ranking comes back (the timelines are still down): degraded answers.
    rankings.down = ranking_query.down = False
    async with http.get("/v1/feed", headers=_auth(ann)) as response:
        body = await response.json()
        assert response.status == 200, body
        assert response.headers["Hubbub-Degraded"] == "feed"
    assert body["degraded"] is True and [p["id"] for p in body["items"]] == [hot]

    metrics = await (await http.get("/metrics")).text()
    assert "hubbub_feed_breaker_state 1.0" in metrics or \
        "hubbub_feed_breaker_state 2.0" in metrics  # open, or due its trial
    assert 'hubbub_feed_fallbacks_total{reason="open"} 2.0' in metrics

    # The timelines work again: within a cooldown a trial read closes the breaker.
    timelines.down = False

    async def recovered() -> bool:
        return (await _feed(http, ann))["degraded"] is False

    await eventually(recovered, 10 * COOLDOWN + 5, "the home feed to recover")
    page = await _feed(http, ann)
    assert [p["id"] for p in page["items"]] == [home_post]
    metrics = await (await http.get("/metrics")).text()
    assert "hubbub_feed_breaker_state 0.0" in metrics
    assert 'hubbub_feed_breaker_transitions_total{state="closed"} 1.0' in metrics


def _auth(account: Account) -> dict[str, str]:
    return account.auth


async def _feed(http: TestClient, who: Account) -> dict[str, Any]:
    async with http.get("/v1/feed", headers=_auth(who)) as response:
        body = await response.json()
        assert response.status == 200, body
        assert ("Hubbub-Degraded" in response.headers) == body["degraded"]
        return body


async def _call(http: TestClient, method: str, path: str, who: Account, status: int,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with http.request(method, path, headers=_auth(who), json=body) as response:
        data = await response.json(content_type=None) if response.status != 204 else {}
        assert response.status == status, data
        return data
