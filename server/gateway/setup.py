"""Attach the Socket.IO server to the aiohttp app and authenticate connections by JWT."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp import web

from server.http.problems import Unauthorized
from server.keys import AUTHENTICATOR

log = logging.getLogger("hubbub.gateway")
SIO = web.AppKey("sio", socketio.AsyncServer)
# Socket.IO clients see this as the connect_error's `data` (and "unauthorized" as `message`).
_UNAUTHORIZED = {"code": "unauthorized"}


def setup_gateway(app: web.Application) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False,
        max_http_buffer_size=1_000_000,
    )
    sio.attach(app, socketio_path="socket.io")
    app[SIO] = sio

    refused = socketio.exceptions.ConnectionRefusedError

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise refused("unauthorized", _UNAUTHORIZED)
        try:
            principal = app[AUTHENTICATOR](token)
        except Unauthorized:
            raise refused("unauthorized", _UNAUTHORIZED) from None
        await sio.save_session(sid, {"principal": principal})
        await sio.enter_room(sid, f"user:{principal.user_id}")

    async def close_sockets(app: web.Application) -> AsyncIterator[None]:
        yield
        # Tell live clients we are going away so they reconnect to another node.
        for sid in list(sio.manager.get_participants("/", None)):
            await sio.disconnect(sid[0] if isinstance(sid, tuple) else sid)

    app.cleanup_ctx.append(close_sockets)
    return sio
