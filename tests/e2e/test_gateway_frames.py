"""Frames that are not Socket.IO, from a raw websocket: a few are tolerated (the socket still
works), a flood closes the socket, and the log gets a handful of short warning lines rather
than a traceback per frame."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from server.gateway.frames import BAD_FRAME_BURST
from server.logs import REPEAT_LIMIT
from tests.e2e.live import signup
from tests.support.server import HubbubProcess

DEADLINE = 10.0
FLOOD = 1000


async def open_socket(session: aiohttp.ClientSession, base_url: str,
                      token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{base_url}/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str(timeout=DEADLINE)).startswith("0{")
    await ws.send_str("40" + json.dumps({"token": token}))
    assert (await ws.receive_str(timeout=DEADLINE)).startswith("40")
    return ws


async def next_ack(ws: aiohttp.ClientWebSocketResponse) -> Any:
    while True:
        frame = await ws.receive_str(timeout=DEADLINE)
        if frame == "2":
            await ws.send_str("3")
        elif frame.startswith("43"):
            return json.loads(frame[frame.index("["):])[0]


def new_lines(hubbub: HubbubProcess, offset: int) -> list[str]:
    with hubbub.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


async def test_garbage_frames_are_counted_and_a_flood_closes_the_socket(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "frames")
    offset = hubbub.log_path.stat().st_size
    async with aiohttp.ClientSession() as session:
        ws = await open_socket(session, hubbub.base_url, ann.token)
        for frame in ("42{not json", "42", "42[]"):  # a few mistakes: still served
            await ws.send_str(frame)
        await ws.send_str('421["presence:subscribe",{"user_ids":[]}]')
        assert (await next_ack(ws))["ok"] is True
        for _ in range(FLOOD):
            try:
                await ws.send_str("42{not json")
            except aiohttp.ClientConnectionResetError:
                break  # the server hung up mid-flood: what the rest of the test checks
        closed = False
        while not closed:  # the server hangs up (an Engine.IO close, then the websocket)
            message = await ws.receive(timeout=DEADLINE)
            closed = message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                      aiohttp.WSMsgType.CLOSING) or message.data == "1"
        await ws.close()
    lines = new_lines(hubbub, offset)
    bad = [line for line in lines if "unparseable Socket.IO frame" in line]
    assert BAD_FRAME_BURST < len(bad) <= REPEAT_LIMIT + 1  # + the summary, once it is due
    assert not [line for line in lines if '"exc"' in line or "Traceback" in line]
    assert sum(map(len, lines)) < 50_000  # was 3.6 MB for 1,000 frames
