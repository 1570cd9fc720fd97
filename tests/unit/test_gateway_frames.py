"""server/gateway/frames.py: frames that are not Socket.IO packets are caught (no traceback
escapes to python-engineio), spend the connection's event tokens, and a socket that keeps
sending them is closed, once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from server.gateway.connections import Connection
from server.gateway.frames import BAD_FRAME_BURST, FrameGuard, GatewayServer
from server.gateway.limits import TokenBucket
from server.gateway.manager import LocalManager
from tests.support.manual_clock import ManualClock

# Socket.IO packets as python-socketio sees them (the Engine.IO "4" message prefix gone).
GARBAGE: list[Any] = [
    "2{not json", "2", "2{}", "2[]", '2"event"', "21", "x", "9", "", "3", "31{}", "4{}",
    "5-", "99999999999-[]", b"\x00\xffbinary",
]


class Rig:
    def __init__(self) -> None:
        self.sio = GatewayServer(async_mode="aiohttp", client_manager=LocalManager())
        self.events: list[Any] = []
        self.closed: list[str] = []
        self.clock = ManualClock()
        self.conn = Connection(sid="", user_id="ann", expires_at=2**40,
                               bucket=TokenBucket(1.0, 100, self.clock))

        async def echo(sid: str, data: Any) -> str:
            self.events.append(data)
            return "ok"

        async def disconnect(eio_sid: str) -> None:
            self.closed.append(eio_sid)

        self.sio.on("echo", echo)
        self.sio.eio.disconnect = disconnect  # type: ignore[method-assign]
        self.sio.frame_guard = FrameGuard(
            lambda eio_sid: self.conn if eio_sid == "e1" else None, clock=self.clock)

    async def connect(self, eio_sid: str) -> str:
        sid = await self.sio.manager.connect(eio_sid, "/")
        self.conn.sid = sid
        return sid

    def tokens_left(self) -> int:
        left = 0
        while not self.conn.bucket.take():
            left += 1
        return left


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def settle(rig: Rig) -> None:
    # python-socketio runs event handlers in tasks: wait for the ones started so far.
    await rig.sio.sleep(0)
    await rig.sio.sleep(0)


async def test_each_kind_of_garbage_is_caught_and_counted(rig: Rig, caplog: Any) -> None:
    await rig.connect("e1")
    caplog.set_level(logging.WARNING, "hubbub.gateway")
    for frame in GARBAGE:
        await rig.sio._handle_eio_message("e1", frame)  # raises nothing
    assert rig.sio.frame_guard.frames == len(GARBAGE)
    bad = [r for r in caplog.records if r.getMessage() == "unparseable Socket.IO frame"]
    assert len(bad) == len(GARBAGE) and not any(r.exc_info for r in caplog.records)
    assert rig.tokens_left() == 100 - len(GARBAGE)  # the per-connection limit was spent


async def test_a_socket_that_keeps_sending_garbage_is_closed_once(rig: Rig) -> None:
    await rig.connect("e1")
    for _ in range(BAD_FRAME_BURST):
        await rig.sio._handle_eio_message("e1", "2{")
    assert rig.closed == []  # a few mistakes are allowed
    await rig.sio._handle_eio_message("e1", '2["echo", "still served"]')
    await settle(rig)
    assert rig.events == ["still served"]
    for _ in range(20):
        await rig.sio._handle_eio_message("e1", "2{")
    await settle(rig)
    assert rig.closed == ["e1"] and rig.sio.frame_guard.closed == 1


async def test_the_allowance_refills_and_is_per_socket(rig: Rig) -> None:
    await rig.connect("e1")
    await rig.connect("e2")
    for _ in range(BAD_FRAME_BURST):
        await rig.sio._handle_eio_message("e1", "9")
    rig.clock.now += 10.0  # one more per ten seconds
    await rig.sio._handle_eio_message("e1", "9")
    for _ in range(BAD_FRAME_BURST):
        await rig.sio._handle_eio_message("e2", "9")  # before connecting counts too
    await settle(rig)
    assert rig.closed == []
    await rig.sio._handle_eio_message("e1", "9")
    await settle(rig)
    assert rig.closed == ["e1"]


async def test_garbage_before_connecting_closes_too(rig: Rig) -> None:
    for _ in range(BAD_FRAME_BURST + 1):
        await rig.sio._handle_eio_message("e9", "5-[1]")  # binary before connecting
    await settle(rig)
    assert rig.closed == ["e9"]
    await rig.sio._handle_eio_disconnect("e9", "transport close")
    assert rig.sio.frame_guard._bad == {}  # forgotten with the socket


async def test_binary_events_still_work(rig: Rig) -> None:
    await rig.connect("e1")
    await rig.sio._handle_eio_message("e1", '51-["echo",{"_placeholder":true,"num":0}]')
    await rig.sio._handle_eio_message("e1", b"\x01\x02")
    await settle(rig)
    assert rig.events == [b"\x01\x02"] and rig.sio.frame_guard.frames == 0
