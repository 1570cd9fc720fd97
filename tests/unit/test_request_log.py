"""The request log line (server/http/middleware.py request_context): one per request, with
the caller's user id once an endpoint has checked their token (PRINCIPAL), none before."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.auth.principal import Principal
from server.http.endpoint import PRINCIPAL
from server.http.middleware import request_context


async def _signed_in(request: web.Request) -> web.Response:
    request[PRINCIPAL] = Principal(user_id="u-1", role="user", token_id="t-1",
                                   expires_at=2_000_000_000)
    return web.Response(text="hi")


async def _anonymous(request: web.Request) -> web.Response:
    return web.Response(text="hi")


async def test_the_request_line_names_the_caller_once_known(
        caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application(middlewares=[request_context])
    app.router.add_get("/signed-in", _signed_in)
    app.router.add_get("/anonymous", _anonymous)
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
        with caplog.at_level(logging.INFO, logger="hubbub.http"):
            for path in ("/signed-in", "/anonymous"):
                async with client.get(path) as response:
                    assert response.status == 200
    lines = {r.path: r.user_id for r in caplog.records  # type: ignore[attr-defined]
             if r.name == "hubbub.http" and hasattr(r, "user_id")}
    assert lines == {"/signed-in": "u-1", "/anonymous": None}
