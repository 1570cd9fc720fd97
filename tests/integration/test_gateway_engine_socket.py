"""The gateway's Engine.IO sockets (server/gateway/engine_socket.py) over a real aiohttp server
and a raw websocket client speaking Engine.IO 4 / Socket.IO 5: handshake, pings by timer and
their timeout, packets written direct and in order, closes both ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from server.gateway.engine_socket import GatewaySocket
from server.gateway.frames import GatewayServer
from server.gateway.manager import LocalManager
from server.gateway.transport import track_websockets

pytestmark = pytest.mark.integration
PING_INTERVAL = 0.2
PING_TIMEOUT = 0.3


class Rig:
    def __init__(self, sio: GatewayServer, url: str) -> None:
        self.sio = sio
        self.url = url
        self.disconnects: list[str] = []


@pytest_asyncio.fixture
async def rig(unused_tcp_port: int) -> AsyncIterator[Rig]:
    sio = GatewayServer(async_mode="aiohttp", client_manager=LocalManager(),
                        ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
    app = web.Application()
    sio.attach(app)
    track_websockets(sio)
    rig = Rig(sio, f"http://127.0.0.1:{unused_tcp_port}/socket.io/?EIO=4&transport=websocket")

    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        await sio.enter_room(sid, "lobby")

    async def disconnect(sid: str, *args: Any) -> None:
        rig.disconnects.append(sid)

    async def echo(sid: str, data: Any) -> Any:
        return data

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield rig
    await runner.cleanup()


async def joined(session: aiohttp.ClientSession, rig: Rig) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(rig.url)
    opened = await ws.receive_str(timeout=2)
    assert opened.startswith("0") and "pingInterval" in json.loads(opened[1:])
    await ws.send_str("40")
    assert (await ws.receive_str(timeout=2)).startswith("40")
    return ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3) -> str:
    return await ws.receive_str(timeout=timeout)


async def test_pings_come_by_timer_while_answered(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await joined(session, rig)
        (socket,) = rig.sio.eio.sockets.values()
        assert isinstance(socket, GatewaySocket)
        for _ in range(3):
            assert await next_frame(ws) == "2"  # PING
            await ws.send_str("3")  # PONG
        assert not ws.closed and rig.disconnects == []
        await ws.close()


async def test_a_client_that_stops_answering_pings_is_closed(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await joined(session, rig)
        assert await next_frame(ws) == "2"
        # No PONG: the server gives up after ping interval + timeout (its service task looks
        # every few tenths of a second) and the socket's disconnect handler runs.
        async with asyncio.timeout(5):
            while not ws.closed:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
        assert len(rig.disconnects) == 1


async def test_events_and_acks_are_written_direct_and_in_order(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await joined(session, rig)
        before = rig.sio.eio.links.direct
        for i in range(20):
            await rig.sio.emit("tick", {"n": i}, to="lobby")
        await ws.send_str('421["echo",{"back":true}]')
        frames = [await next_frame(ws) for _ in range(21)]
        frames = [f for f in frames if f != "2"]  # a ping may come in between
        while len(frames) < 21:
            frame = await next_frame(ws)
            if frame != "2":
                frames.append(frame)
        assert frames[:20] == [f'42["tick",{{"n":{i}}}]' for i in range(20)]
        assert frames[20] == '431[{"back":true}]'
        assert rig.sio.eio.links.direct - before >= 21
        await ws.close()


async def test_the_server_closing_a_socket_tells_the_client(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await joined(session, rig)
        (sid,) = [sid for sid, _ in rig.sio.manager.get_participants("/", "lobby")]
        eio_sid = rig.sio.manager.eio_sid_from_sid(sid, "/")
        await rig.sio.eio.disconnect(eio_sid)  # e.g. shutdown, or garbage frames
        seen = []
        async with asyncio.timeout(3):
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                seen.append(message.data)
        assert seen[-1] == "1"  # Engine.IO CLOSE, then the server closed the websocket
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert rig.disconnects == [sid]


async def test_what_only_the_standard_library_encodes_still_reaches_the_room(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await joined(session, rig)
        await rig.sio.emit("tick", {"text": "lone \ud800 surrogate"}, to="lobby")
        frame = await next_frame(ws)
        while frame == "2":  # a ping may come first
            frame = await next_frame(ws)
        assert frame == '42["tick",{"text":"lone \\ud800 surrogate"}]'
        await ws.close()
