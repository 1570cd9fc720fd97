"""Publishing to connected accounts against `hubbub serve` (a server of its own, with a
database of its own so no other scheduler takes these posts, small retry settings, and
X_API_BASE_URL pointing at the local X API v2 server):

- connections over REST: the webhook secret shown once, nothing secret listed, others' 404;
- a webhook receives a delivery the test verifies with the reference Standard Webhooks
  library, retried after a 500 with the same webhook-id; dead-lettered after repeated
  failures, then retried from the dead-letter queue;
- X: a post with an image; a 429 honoured until its reset, then published; a duplicate
  refused at once (403, permanent).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import e2e_env
from tests.support.accounts import Account, signup
from tests.support.databases import create_database, drop_database
from tests.support.images import png
from tests.support.polling import eventually
from tests.support.server import HubbubProcess
from tests.support.x_api import LocalXApi

pytestmark = pytest.mark.e2e

DEADLINE = 20.0
MAX_ATTEMPTS = 3


class Receiver:
    """The user's webhook endpoint: answers the statuses queued in `script` (then 204) and
    keeps every delivery with whether its signature verified."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.deliveries: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}  # path -> signing secret

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.secrets.get(request.path)
        payload = Webhook(secret).verify(body, dict(request.headers)) if secret else None
        status = self.script.pop(0) if self.script else 204
        self.deliveries.append({"path": request.path, "id": request.headers["webhook-id"],
                                "payload": payload, "status": status})
        return web.Response(status=status)

    def to(self, path: str) -> list[dict[str, Any]]:
        return [d for d in self.deliveries if d["path"] == path]


@pytest_asyncio.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{name}", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield target, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module")
async def x_api() -> AsyncIterator[LocalXApi]:
    api = await LocalXApi().start()
    yield api
    await api.stop()


@pytest_asyncio.fixture(scope="module")
async def publishing_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_pub")
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest.fixture(scope="module")
def server(publishing_dsn: str, redis_url: str, x_api: LocalXApi) -> Iterator[HubbubProcess]:
    process = HubbubProcess({
        **e2e_env(publishing_dsn, redis_url),
        "X_API_BASE_URL": x_api.base_url,
        "PUBLISHING_ALLOW_HTTP_LOCALHOST": "true",
        "PUBLISHING_HTTP_TIMEOUT": "5",
        "SCHEDULE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "SCHEDULE_RETRY_BASE_SECONDS": "0.2",
        "SCHEDULE_RETRY_MAX_SECONDS": "0.5",
        "SCHEDULE_MIN_INTERVAL_SECONDS": "0",
    }).start()
    yield process
    assert process.stop() == 0, "hubbub did not shut down cleanly on SIGTERM"


@pytest_asyncio.fixture
async def http(server: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.base_url) as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               expect: int, body: Any = None) -> Any:
    async with http.request(method, path, json=body, headers=who.auth) as response:
        assert response.status == expect, (method, path, await response.text())
        return await response.json(content_type=None) if response.status != 204 else None


async def publish_now(http: aiohttp.ClientSession, who: Account, targets: list[dict[str, Any]],
                      **body: Any) -> dict[str, Any]:
    """Schedule a post an hour ahead, then publish it now (no wait for a due time)."""
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    post = await call(http, "POST", "/v1/scheduled_posts", who, 201, {
        "text": f"planned {uuid.uuid4().hex[:8]}", "scheduled_for": ahead, "targets": targets,
        **body})
    await call(http, "POST", f"/v1/scheduled_posts/{post['id']}/publish", who, 202)
    return post


async def settled(http: aiohttp.ClientSession, who: Account, post_id: str,
                  status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await call(http, "GET", f"/v1/scheduled_posts/{post_id}", who, 200))
        return found["status"] == status

    await eventually(reached, DEADLINE, f"scheduled post {post_id} to be {status}")
    return found


async def attempts(http: aiohttp.ClientSession, who: Account, post_id: str) -> list[Any]:
    page = await call(http, "GET", f"/v1/scheduled_posts/{post_id}/attempts", who, 200)
    return [(a["kind"], a["outcome"], a["error_code"]) for a in page["items"]]


async def connect_webhook(http: aiohttp.ClientSession, who: Account,
                          receiver: tuple[Receiver, str]) -> tuple[str, str]:
    target, base = receiver
    path = f"/hooks/{uuid.uuid4().hex[:8]}"
    created = await call(http, "POST", "/v1/publishing/connections", who, 201,
                         {"kind": "webhook", "url": base + path})
    target.secrets[path] = created["signing_secret"]
    return created["id"], path


async def test_connections_show_secrets_once_and_only_to_their_owner(
        http: aiohttp.ClientSession, receiver: tuple[Receiver, str]) -> None:
    ann, bob = await signup(http, "conn"), await signup(http, "other")
    created = await call(http, "POST", "/v1/publishing/connections", ann, 201,
                         {"kind": "webhook", "url": receiver[1] + "/hooks/a", "label": "mine"})
    assert created["signing_secret"].startswith("whsec_") and created["label"] == "mine"
    x = await call(http, "POST", "/v1/publishing/connections", ann, 201,
                   {"kind": "x", "access_token": "very-secret-token", "username": "ann"})
    assert x["signing_secret"] is None
    listing = await call(http, "GET", "/v1/publishing/connections", ann, 200)
    assert [c["id"] for c in listing["items"]] == [created["id"], x["id"]]
    text = str(listing)
    assert "whsec_" not in text and "very-secret-token" not in text
    assert "signing_secret" not in text and "access_token" not in text
    assert (await call(http, "GET", "/v1/publishing/connections", bob, 200))["items"] == []

    refused = await call(http, "POST", "/v1/publishing/connections", ann, 422,
                         {"kind": "webhook", "url": "http://example.com/hook"})
    assert refused["code"] == "insecure_url"
    # Bob can neither remove Ann's connection nor target it.
    assert (await call(http, "DELETE", f"/v1/publishing/connections/{x['id']}", bob, 404)
            )["code"] == "connection_not_found"
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    stolen = await call(http, "POST", "/v1/scheduled_posts", bob, 422, {
        "text": "not yours", "scheduled_for": ahead,
        "targets": [{"kind": "x", "connection_id": x["id"]}]})
    assert stolen["code"] == "unknown_connection"
    await call(http, "DELETE", f"/v1/publishing/connections/{x['id']}", ann, 204)
    listing = await call(http, "GET", "/v1/publishing/connections", ann, 200)
    assert [c["id"] for c in listing["items"]] == [created["id"]]


async def test_a_webhook_gets_a_signed_delivery_retried_after_a_500(
        http: aiohttp.ClientSession, receiver: tuple[Receiver, str]) -> None:
    target, _ = receiver
    ann = await signup(http, "hooked")
    connection_id, path = await connect_webhook(http, ann, receiver)
    target.script += [500]
    post = await publish_now(http, ann, [{"kind": "hubbub"},
                                         {"kind": "webhook", "connection_id": connection_id}])
    done = await settled(http, ann, post["id"], "published")
    first, second = target.to(path)
    assert (first["status"], second["status"]) == (500, 204)
    assert first["id"] == second["id"] == f"{post['id']}:1"  # the receiver can dedupe
    for delivery in (first, second):  # verified by the reference library
        assert delivery["payload"]["type"] == "post.published"
        assert delivery["payload"]["data"]["text"] == post["text"]
        assert delivery["payload"]["data"]["scheduled_post_id"] == post["id"]
    assert second["payload"]["data"]["attempt"] == 2
    assert [t["status"] for t in done["targets"]] == ["published", "published"]
    assert sorted(await attempts(http, ann, post["id"])) == sorted([
        ("hubbub", "published", None), ("webhook", "transient", "server_error"),
        ("webhook", "published", None)])


async def test_a_failing_webhook_is_dead_lettered_then_retried(
        http: aiohttp.ClientSession, receiver: tuple[Receiver, str]) -> None:
    target, _ = receiver
    ann = await signup(http, "deadhook")
    connection_id, path = await connect_webhook(http, ann, receiver)
    target.script += [500] * MAX_ATTEMPTS
    post = await publish_now(http, ann, [{"kind": "webhook", "connection_id": connection_id}])
    failed = await settled(http, ann, post["id"], "failed")
    assert failed["targets"][0]["last_error_code"] == "server_error"
    assert [d["status"] for d in target.to(path)] == [500] * MAX_ATTEMPTS
    letters = await call(http, "GET", "/v1/scheduled_posts/dead_letters", ann, 200)
    [letter] = letters["items"]
    assert letter["scheduled_post"]["id"] == post["id"]
    assert [(a["outcome"], a["error_code"]) for a in letter["attempts"]] == [
        ("transient", "server_error")] * MAX_ATTEMPTS

    await call(http, "POST", f"/v1/scheduled_posts/{post['id']}/retry", ann, 202)
    await settled(http, ann, post["id"], "published")
    deliveries = target.to(path)
    assert [d["status"] for d in deliveries] == [500] * MAX_ATTEMPTS + [204]
    assert {d["id"] for d in deliveries} == {f"{post['id']}:0"}
    assert (await call(http, "GET", "/v1/scheduled_posts/dead_letters", ann, 200)
            )["items"] == []


async def connect_x(http: aiohttp.ClientSession, who: Account, x_api: LocalXApi) -> tuple[
        str, str]:
    token = f"x-token-{uuid.uuid4().hex}"
    x_api.grant(token)
    created = await call(http, "POST", "/v1/publishing/connections", who, 201,
                         {"kind": "x", "access_token": token, "username": who.username})
    return created["id"], token


async def test_x_publishes_a_post_with_an_image(http: aiohttp.ClientSession,
                                                x_api: LocalXApi) -> None:
    ann = await signup(http, "xposter")
    connection_id, token = await connect_x(http, ann, x_api)
    form = aiohttp.FormData()
    form.add_field("file", png(), filename="photo.png", content_type="image/png")
    async with http.post("/v1/media", data=form, headers=ann.auth) as response:
        assert response.status == 201, await response.text()
        media = await response.json()
    post = await publish_now(http, ann, [{"kind": "x", "connection_id": connection_id}],
                             media_ids=[media["id"]])
    done = await settled(http, ann, post["id"], "published")
    [upload] = x_api.of("/2/media/upload", token)
    assert upload.status == 200 and upload.form["media"].startswith(b"\x89PNG")
    [created] = x_api.of("/2/tweets", token)
    assert created.status == 201 and created.json["text"] == post["text"]
    assert len(created.json["media"]["media_ids"]) == 1
    external_id = done["targets"][0]["external_id"]
    assert x_api.posts[external_id]["text"] == post["text"]


async def test_x_429_is_honoured_until_the_reset(http: aiohttp.ClientSession,
                                                 x_api: LocalXApi) -> None:
    ann = await signup(http, "xlimited")
    connection_id, token = await connect_x(http, ann, x_api)
    reset_at = x_api.exhaust(token, reset_in=2)
    post = await publish_now(http, ann, [{"kind": "x", "connection_id": connection_id}])
    done = await settled(http, ann, post["id"], "published")
    calls = x_api.of("/2/tweets", token)
    assert [c.status for c in calls] == [429, 201]  # asked once, then not before the reset
    assert calls[1].at >= reset_at
    assert datetime.fromisoformat(done["published_at"]).timestamp() >= reset_at
    assert await attempts(http, ann, post["id"]) == [
        ("x", "transient", "rate_limited"), ("x", "published", None)]


async def test_x_duplicate_content_fails_at_once(http: aiohttp.ClientSession,
                                                 x_api: LocalXApi) -> None:
    ann = await signup(http, "xdup")
    connection_id, token = await connect_x(http, ann, x_api)
    targets = [{"kind": "x", "connection_id": connection_id}]
    first = await publish_now(http, ann, targets, text="Same words twice")
    await settled(http, ann, first["id"], "published")
    second = await publish_now(http, ann, targets, text="Same words twice")
    failed = await settled(http, ann, second["id"], "failed")
    assert failed["targets"][0]["last_error_code"] == "duplicate_content"
    assert await attempts(http, ann, second["id"]) == [("x", "permanent", "duplicate_content")]
    assert [c.status for c in x_api.of("/2/tweets", token)] == [201, 403]
