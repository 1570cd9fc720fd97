"""The webhook and X publishers against real local HTTP servers: what each answer becomes
(published, transient with its wait, permanent with its code)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from actors.clock import LoopClock
from protocols.publishing import PublishFailed
from server.publishing.service import ConnectionService
from server.publishing.webhook import WebhookPublisher
from server.publishing.x import DropRateLimits, RateLimitSink, XPublisher
from tests.support.x_api import LocalXApi
from tests.unit.publishing.kit import ANN, request, service, webhook, x_account


class Receiver:
    """A webhook endpoint answering what `answer` says, recording each delivery."""

    def __init__(self) -> None:
        self.answer: Callable[[], web.StreamResponse] = lambda: web.Response(status=204)
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.deliveries.append((dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow receiver (the timeout case), not a sync
        return self.answer()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner, base = await serve(app)
    yield target, base + "/hook"
    await runner.cleanup()


@pytest_asyncio.fixture
async def x_api() -> AsyncIterator[LocalXApi]:
    api = await LocalXApi().start()
    yield api
    await api.stop()


async def test_a_delivery_is_signed_and_keyed_by_the_idempotency_key(
        session: aiohttp.ClientSession, receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    connections = service()
    created = await connections.create(ANN, webhook(url))
    publisher = WebhookPublisher(connections, session, LoopClock(), timeout=5)
    await publisher.publish(request(created.id, text="hello hooks"))
    [(headers, body)] = target.deliveries
    assert created.signing_secret is not None
    payload = Webhook(created.signing_secret).verify(body, headers)
    assert payload["type"] == "post.published"
    assert payload["data"]["text"] == "hello hooks" and payload["data"]["target_index"] == 1
    assert headers["webhook-id"] == request(None).idempotency_key
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60


@pytest.mark.parametrize(("answer", "code", "permanent", "retry_after"), [
    (lambda: web.Response(status=500), "server_error", False, None),
    (lambda: web.Response(status=503, headers={"Retry-After": "12"}), "server_error", False,
     12.0),
    (lambda: web.Response(status=429, headers={"Retry-After": "3"}), "rate_limited", False,
     3.0),
    (lambda: web.Response(status=410), "webhook_rejected", True, None),
    (lambda: web.Response(status=400), "webhook_rejected", True, None),
    (lambda: web.Response(status=302, headers={"Location": "http://127.0.0.1:9/"}),
     "webhook_redirected", True, None),
])
async def test_webhook_answers(session: aiohttp.ClientSession, receiver: tuple[Receiver, str],
                               answer: Callable[[], web.StreamResponse], code: str,
                               permanent: bool, retry_after: float | None) -> None:
    target, url = receiver
    target.answer = answer
    connections = service()
    created = await connections.create(ANN, webhook(url))
    with pytest.raises(PublishFailed) as caught:
        await WebhookPublisher(connections, session, LoopClock(), timeout=5).publish(
            request(created.id))
    assert (caught.value.code, caught.value.permanent, caught.value.retry_after) == (
        code, permanent, retry_after)


async def test_webhook_timeouts_and_refused_connections_are_transient(
        session: aiohttp.ClientSession, receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    target.delay = 1.0
    connections = service()
    slow = await connections.create(ANN, webhook(url))
    closed = await connections.create(ANN, webhook("http://127.0.0.1:9/nothing"))
    publisher = WebhookPublisher(connections, session, LoopClock(), timeout=0.2)
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(slow.id))
    assert (caught.value.code, caught.value.permanent) == ("timeout", False)
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(closed.id))
    assert (caught.value.code, caught.value.permanent) == ("connection_failed", False)


async def test_a_removed_connection_fails_permanently(session: aiohttp.ClientSession) -> None:
    connections = service()
    created = await connections.create(ANN, webhook("https://example.com/h"))
    await connections.delete(ANN, created.id)
    with pytest.raises(PublishFailed) as caught:
        await WebhookPublisher(connections, session, LoopClock(), timeout=5).publish(
            request(created.id))
    assert (caught.value.code, caught.value.permanent) == ("connection_removed", True)


class Reports:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def reached(self, **event: Any) -> None:
        self.seen.append(event)


async def x_publisher(connections: ConnectionService, session: aiohttp.ClientSession,
                      api: LocalXApi, reports: RateLimitSink | None = None,
                      media: dict[str, tuple[bytes, str]] | None = None) -> XPublisher:
    async def read(owner_id: str, media_id: str) -> tuple[bytes, str] | None:
        return (media or {}).get(media_id) if owner_id == ANN.user_id else None

    sink: RateLimitSink = reports or DropRateLimits()
    return XPublisher(connections, session, LoopClock(), base_url=api.base_url, timeout=5,
                      media=read, rate_limits=lambda: sink)


async def test_x_posts_with_media(session: aiohttp.ClientSession, x_api: LocalXApi) -> None:
    x_api.grant("tok-ann")
    connections = service()
    created = await connections.create(ANN, x_account("tok-ann"))
    publisher = await x_publisher(connections, session, x_api,
                                  media={"m1": (b"\x89PNG...", "image/png")})
    result = await publisher.publish(request(created.id, text="to X", media_ids=["m1"]))
    [upload] = x_api.of("/2/media/upload", "tok-ann")
    assert upload.form["media"] == b"\x89PNG..." and upload.form["media_category"] == \
        "tweet_image"
    [post] = x_api.of("/2/tweets", "tok-ann")
    assert post.json["text"] == "to X" and len(post.json["media"]["media_ids"]) == 1
    assert result.external_id in x_api.posts
    assert result.url == f"https://x.com/i/status/{result.external_id}"


async def test_x_failures(session: aiohttp.ClientSession, x_api: LocalXApi) -> None:
    x_api.grant("tok-ann")
    connections = service()
    created = await connections.create(ANN, x_account("tok-ann"))
    publisher = await x_publisher(connections, session, x_api)
    await publisher.publish(request(created.id, text="once"))
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(created.id, text="once"))
    assert (caught.value.code, caught.value.permanent) == ("duplicate_content", True)
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(created.id, media_ids=["not-mine"]))
    assert (caught.value.code, caught.value.permanent) == ("invalid_media", True)
    x_api.revoke("tok-ann")
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(created.id, text="after revoke"))
    assert (caught.value.code, caught.value.permanent) == ("token_revoked", True)


async def test_x_429_waits_for_the_reset(session: aiohttp.ClientSession,
                                         x_api: LocalXApi) -> None:
    x_api.grant("tok-ann")
    connections = service()
    created = await connections.create(ANN, x_account("tok-ann"))
    publisher = await x_publisher(connections, session, x_api)
    reset = x_api.exhaust("tok-ann", reset_in=60)
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(created.id))
    assert (caught.value.code, caught.value.permanent) == ("rate_limited", False)
    assert caught.value.retry_after is not None
    assert abs(caught.value.retry_after - (reset - time.time())) < 2
    # Until the reset this node does not ask X again.
    with pytest.raises(PublishFailed) as caught:
        await publisher.publish(request(created.id))
    assert caught.value.code == "rate_limited" and len(x_api.of("/2/tweets")) == 1


async def test_x_spent_window_on_success_is_reported(session: aiohttp.ClientSession) -> None:
    api = await LocalXApi(limit=1).start()
    try:
        api.grant("tok-ann")
        connections = service()
        created = await connections.create(ANN, x_account("tok-ann"))
        reports = Reports()
        publisher = await x_publisher(connections, session, api, reports)
        await publisher.publish(request(created.id, text="the last one"))
        [event] = reports.seen
        assert event["kind"] == "x" and event["remaining"] == 0 and event["limit"] == 1
        assert event["connection_id"] == created.id and event["reset_at"] is not None
        with pytest.raises(PublishFailed) as caught:  # gated locally, X not asked
            await publisher.publish(request(created.id, text="one more"))
        assert caught.value.code == "rate_limited" and len(api.of("/2/tweets")) == 1
    finally:
        await api.stop()
