"""Engine.IO's aiohttp websocket driver, remembering each open websocket so that shutdown can
close them itself.

aiohttp waits for in-flight handlers (up to SHUTDOWN_TIMEOUT) before cleanup, and every
websocket is such a handler. Engine.IO's own close only asks the client to hang up; a client
that does not answer (a frozen tab, a stalled test process) would hold the shutdown for the
whole timeout. Closing the aiohttp WebSocketResponse ends its handler at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp import WSCloseCode, web
from engineio.async_drivers.aiohttp import WebSocket

log = logging.getLogger("hubbub.gateway")
CLOSE_TIMEOUT = 5.0


class OpenWebSockets:
    """The websockets currently open on this server, by their aiohttp response."""

    def __init__(self) -> None:
        self._open: set[web.WebSocketResponse] = set()

    def driver(self) -> Callable[[Any, Any], WebSocket]:
        """A drop-in for engineio's `_async['websocket']` that registers each socket here."""
        registry = self._open

        class TrackedWebSocket(WebSocket):
            async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
                # As WebSocket.__call__, plus the bookkeeping around the handler, and without
                # permessage-deflate: chat frames are small JSON, and compressing each one
                # cost ~13% of the server's CPU in `make bench-chat` for little saved.
                request = environ["aiohttp.request"]
                self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size,
                                                   compress=False)
                await self._sock.prepare(request)
                self.environ = environ
                registry.add(self._sock)
                # The Engine.IO socket this websocket serves: its packets may now be written
                # to the connection directly (server/gateway/direct.py).
                socket = getattr(self.handler, "__self__", None)
                links = getattr(self.server, "links", None)
                if socket is not None and links is not None:
                    links.add(socket.sid, socket, request.transport, request.protocol)
                try:
                    await self.handler(self)
                finally:
                    registry.discard(self._sock)
                    if socket is not None and links is not None:
                        links.discard(socket.sid)
                return self._sock

        return TrackedWebSocket

    def __len__(self) -> int:
        return len(self._open)

    async def close_all(self) -> None:
        sockets = list(self._open)
        if not sockets:
            return
        results = await asyncio.gather(*(
            asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"),
                             CLOSE_TIMEOUT) for ws in sockets), return_exceptions=True)
        failed = sum(isinstance(r, BaseException) for r in results)
        if failed:
            log.warning("%d of %d websockets did not close cleanly", failed, len(sockets))


def track_websockets(sio: socketio.AsyncServer) -> OpenWebSockets:
    """Install the tracking driver on this server only (engineio's driver table is a module
    global: copy it rather than change it for everyone)."""
    sockets = OpenWebSockets()
    table = dict(sio.eio._async)
    table["websocket"] = sockets.driver()
    sio.eio._async = table
    return sockets
