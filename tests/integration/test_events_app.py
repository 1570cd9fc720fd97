"""The event pipeline inside a running app (real Postgres, its own database): a consumer that
an area subscribes from its own cleanup context receives the events of API calls, metrics
count it, and shutdown leaves no task behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import load_settings
from server.events.wiring import EVENT_BUS
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually
from tests.unit.events_kit import Recorder

pytestmark = pytest.mark.integration


async def test_area_consumers_get_api_events_and_shutdown_is_clean(admin_pg_dsn: str) -> None:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_events_app")
    try:
        app = create_app(load_settings({"DATABASE_URL": dsn, "JWT_SECRET": "x" * 32}))
        seen = Recorder()

        async def area_ctx(app: web.Application) -> AsyncIterator[None]:
            # An area subscribing once its resources exist, after setup_events ran.
            app[EVENT_BUS].subscribe("test.area", ["hubbub.users"], seen)
            yield

        app.cleanup_ctx.append(area_ctx)
        async with TestServer(app) as server, TestClient(server) as client:
            async with client.get("/info") as response:
                assert (await response.json())["adapters"]["events"] == "in-process"
            name = f"ev_{uuid.uuid4().hex[:10]}"
            async with client.post("/v1/auth/signup", json={
                    "username": name, "email": f"{name}@example.test",
                    "password": "correct horse battery"}) as response:
                assert response.status == 201
                user_id = (await response.json())["user"]["id"]
            await asyncio.wait_for(seen.arrived.wait(), 10)
            assert [(e.type, e.data["user_id"]) for e in seen.seen] == [
                ("user.created", user_id)]
            expected = ['hubbub_events_handled_total{consumer="test.area"} 1.0',
                        'hubbub_events_published_total{topic="hubbub.users"} 1.0',
                        "hubbub_outbox_relay_leader 1.0"]

            async def counted() -> bool:  # the relay counts once it has marked the row
                async with client.get("/metrics") as response:
                    text = await response.text()
                return all(line in text for line in expected)

            await eventually(counted, 10, "the event metrics")
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("events:")]
    finally:
        await drop_database(admin_pg_dsn, dsn)
