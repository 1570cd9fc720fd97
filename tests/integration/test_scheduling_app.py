"""The `hubbub` publisher inside a running app (real Postgres, its own database): it creates
the post through the posts service at most once per idempotency key, however often it is
called (a retry after a node died mid-publish), and maps the posts area's refusals to
permanent or transient failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocols.ids import new_id
from protocols.publishing import PublishFailed, PublishRequest
from server.app import create_app
from server.config import load_settings
from server.keys import DB_POOL
from server.scheduling.keys import PUBLISHING
from tests.support.databases import create_database, drop_database

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def client(admin_pg_dsn: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_sched_app")
    try:
        app = create_app(load_settings({"DATABASE_URL": dsn, "JWT_SECRET": "x" * 32,
                                        "POSTS_PER_DAY": "2"}))
        async with TestServer(app) as server, TestClient(server) as client:
            yield client
    finally:
        await drop_database(admin_pg_dsn, dsn)


async def signup(client: TestClient[web.Request, web.Application]) -> str:
    name = f"p_{uuid.uuid4().hex[:10]}"
    async with client.post("/v1/auth/signup", json={
            "username": name, "email": f"{name}@example.test",
            "password": "correct horse battery"}) as response:
        assert response.status == 201
        return (await response.json())["user"]["id"]


async def test_the_hubbub_publisher_creates_a_post_at_most_once(
        client: TestClient[web.Request, web.Application]) -> None:
    app = client.server.app
    author = await signup(client)
    publisher = app[PUBLISHING].publishers["hubbub"]
    request = PublishRequest(scheduled_post_id=new_id(), target_index=0, author_id=author,
                             text="exactly once", idempotency_key=f"{new_id()}:0")
    results = await asyncio.gather(*(publisher.publish(request) for _ in range(3)))
    again = await publisher.publish(request)
    ids = {r.external_id for r in [*results, again]}
    assert len(ids) == 1
    [post_id] = ids
    pool = app[DB_POOL]
    assert await pool.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", author) == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE type = 'post.created'"
                               " AND envelope->'data'->>'post_id' = $1", post_id) == 1

    # Another key is another post; past POSTS_PER_DAY (2 here) the refusal is transient,
    # with the time the allowance comes back.
    other = await publisher.publish(PublishRequest(
        scheduled_post_id=new_id(), target_index=0, author_id=author, text="second",
        idempotency_key=f"{new_id()}:0"))
    assert other.external_id != post_id
    with pytest.raises(PublishFailed) as limited:
        await publisher.publish(PublishRequest(
            scheduled_post_id=new_id(), target_index=0, author_id=author, text="third",
            idempotency_key=f"{new_id()}:0"))
    assert limited.value.code == "daily_limit" and not limited.value.permanent
    assert limited.value.retry_after and limited.value.retry_after > 3600

    # Media that is not the author's: permanent.
    with pytest.raises(PublishFailed) as invalid:
        await publisher.publish(PublishRequest(
            scheduled_post_id=new_id(), target_index=0, author_id=await signup(client),
            text="with someone's media", media_ids=[new_id()], idempotency_key=f"{new_id()}:0"))
    assert invalid.value.code == "invalid_media" and invalid.value.permanent
