"""Client events on the fast path (server/gateway/inbound.py), inside a running app (real
Postgres, its own database, in-process Socket.IO) and from a raw websocket speaking Engine.IO 4
/ Socket.IO 5, so every frame is seen as sent: `42` events skip python-engineio's `message`
handler, their acks are byte for byte those of python-socketio's path (the same frames sent
with the fast path off), they start in arrival order, and whatever else a client sends still
goes python-socketio's way."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer

from protocols.socket import MessageSendEvent
from server.app import create_app
from server.config import load_settings
from server.gateway import acks, engine_socket, namespace
from server.gateway.connections import Connection, Gateway
from server.gateway.limits import MAX_EVENT_BYTES
from server.gateway.setup import SIO
from tests.support.accounts import Account, signup
from tests.support.databases import create_database, drop_database

pytestmark = pytest.mark.integration
DEADLINE = 10.0
ROOM = "0190a0b0-0000-7000-8000-000000000001"
SUBSCRIBE = '["presence:subscribe",{"user_ids":[]}]'


@dataclass
class Rig:
    server: TestServer
    app: web.Application
    http: aiohttp.ClientSession
    account: Account

    @property
    def sio(self) -> socketio.AsyncServer:
        return self.app[SIO]


@pytest_asyncio.fixture(scope="module")
async def rig(admin_pg_dsn: str) -> AsyncIterator[Rig]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_inbound")
    try:
        app = create_app(load_settings({"DATABASE_URL": dsn, "JWT_SECRET": "x" * 32}))
        async with TestServer(app) as server, \
                aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            yield Rig(server, app, http, await signup(http, "inbound"))
    finally:
        await drop_database(admin_pg_dsn, dsn)


@pytest.fixture
def handled(rig: Rig) -> Iterator[list[str]]:
    """Counts the frames python-engineio hands to its `message` handler (the old path)."""
    eio = rig.sio.eio
    original = eio._trigger_event
    seen: list[str] = []

    async def counting(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            seen.append(args[1])
        return await original(event, *args, **kwargs)

    eio._trigger_event = counting
    yield seen
    del eio._trigger_event


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The client_id of each `message:send` as its handler starts (no actor, no database);
    the client_id "boom" makes the handler raise."""
    seen: list[str] = []

    async def send(gw: Gateway, conn: Connection, event: MessageSendEvent) -> dict[str, Any]:
        seen.append(event.client_id)
        if event.client_id == "boom":
            raise RuntimeError("a handler bug")
        return acks.ok()

    monkeypatch.setattr(namespace, "ROUTES", {**namespace.ROUTES, "message:send": send})
    return seen


def old_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_socket, "take_event", lambda socket, text: False)


def send_frame(client_id: str, ack_id: int | None = None) -> str:
    body = json.dumps(["message:send", {"room_id": ROOM, "client_id": client_id, "text": "hi"}])
    return f"42{'' if ack_id is None else ack_id}{body}"


class Raw:
    """A raw Engine.IO websocket: frames in, and the Socket.IO packets out, PINGs answered."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, rig: Rig, *, connect: bool = True) -> Raw:
        ws = await rig.http.ws_connect("/socket.io/?EIO=4&transport=websocket")
        raw = cls(ws)
        assert (await raw.packet()).startswith("0{")
        if connect:
            await raw.connect(rig)
        return raw

    async def connect(self, rig: Rig) -> None:
        await self.ws.send_str("40" + json.dumps({"token": rig.account.token}))
        assert (await self.packet()).startswith("40{")

    async def send(self, *frames: str) -> None:
        for frame in frames:
            await self.ws.send_str(frame)

    async def packet(self) -> str:
        while True:
            frame = await self.ws.receive_str(timeout=DEADLINE)
            if frame == "2":
                await self.ws.send_str("3")
            else:
                return frame

    async def acks(self, count: int) -> list[str]:
        """The next `count` ACK packets (whole frames); other packets are skipped."""
        found: list[str] = []
        while len(found) < count:
            frame = await self.packet()
            if frame.startswith("43"):
                found.append(frame)
        return found

    async def close(self) -> None:
        await self.ws.close()


def decoded(frame: str) -> tuple[int, Any]:
    """An ACK frame `43<id>[...]` as (id, its single argument)."""
    match = re.fullmatch(r"43(\d+)(\[.*\])", frame, re.S)
    assert match, frame
    (arg,) = json.loads(match[2])
    return int(match[1]), arg


# Events whose acks are the same whenever they are sent: ok, refused by each step of the
# pipeline (unknown, undecodable, too large), handler errors, client events named like
# python-socketio's own, and ids as python-socketio parses them.
SAME_EVERY_TIME = [
    "421" + SUBSCRIBE,
    '422["presence:subscribe",{"user_ids":"all"}]',
    '423["no:such:event",{"x":1}]',
    '424["presence:subscribe"]',
    '425["presence:subscribe",{"user_ids":[]},2]',
    "426" + json.dumps(["message:send", {"room_id": ROOM, "client_id": "c",
                                         "text": "x" * (MAX_EVENT_BYTES + 10)}]),
    send_frame("ok", 7),
    send_frame("boom", 8),
    '429["connect",{"token":"x"}]',
    '4210["disconnect",{}]',
    '4211[42,{"x":1}]',
    '4212[["a"]]',
    '420013["presence:subscribe",{"user_ids":["not-an-id"]}]',
    '4214["message:send",{"room_id":"' + ROOM + '","client_id":"uni","text":"é ☃ \\u00e9 😀"}]',
    '42123456789012345678["typing",{"room_id":"' + ROOM + '","active":true}]',
    # Left to python-socketio: an id longer than 18 digits, and what msgspec cannot parse
    # (the standard library can).
    '4212345678901234567890["typing",{"room_id":"' + ROOM + '","active":true}]',
    '4215["message:send",{"room_id":"' + ROOM + '","client_id":"c","text":"\\ud800"}]',
    '4216["presence:subscribe",NaN]',
]
FALLBACK = 3  # the last three


async def acks_for(rig: Rig, frames: list[str]) -> list[str]:
    raw = await Raw.open(rig)
    try:
        await raw.send(*frames)
        return await raw.acks(len(frames))
    finally:
        await raw.close()


async def test_acks_are_those_of_python_socketios_path(
        rig: Rig, handled: list[str], started: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fast = await acks_for(rig, SAME_EVERY_TIME)
    connect = "0" + json.dumps({"token": rig.account.token})
    assert handled == [connect, *(f[1:] for f in SAME_EVERY_TIME[-FALLBACK:])]
    old_path_only(monkeypatch)
    old = await acks_for(rig, SAME_EVERY_TIME)
    assert handled[FALLBACK + 1:] == [connect, *(f[1:] for f in SAME_EVERY_TIME)]
    assert sorted(fast) == sorted(old)
    by_id = dict(map(decoded, fast))
    assert by_id.pop(1) == {"ok": True, "presence": []}
    assert by_id.pop(7) == {"ok": True}
    assert by_id.pop(14) == {"ok": True}
    assert {i: ack["error"]["code"] for i, ack in by_id.items()} == {
        2: "invalid", 3: "invalid", 4: "invalid", 5: "invalid", 6: "too_large", 8: "internal",
        9: "invalid", 10: "invalid", 11: "invalid", 12: "invalid", 13: "invalid",
        123456789012345678: "not_joined", 12345678901234567890: "not_joined",
        15: "invalid", 16: "invalid"}
    assert started == ["ok", "boom", "uni"] * 2


async def test_rate_limited_acks_have_python_socketios_form(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [f"42{i}{SUBSCRIBE}" for i in range(1, 81)]  # twice the burst, sent at once

    def shapes(found: list[str]) -> set[str]:
        return {re.sub(r"^43\d+|\"retry_after\":[0-9.e-]+", "", f) for f in found}

    fast = await acks_for(rig, frames)
    old_path_only(monkeypatch)
    old = await acks_for(rig, frames)
    assert shapes(fast) == shapes(old) == {
        '[{"ok":true,"presence":[]}]',
        '[{"ok":false,"error":{"code":"rate_limited","message":"too many events on this '
        'connection; slow down",}}]'}
    retry_after = [decoded(f)[1]["error"]["retry_after"] for f in fast if "retry_after" in f]
    assert retry_after and all(0 < wait <= 1 for wait in retry_after)


async def test_events_start_in_arrival_order(
        rig: Rig, handled: list[str], started: list[str]) -> None:
    raw = await Raw.open(rig)
    frames = [send_frame(str(i), i) for i in range(30)]  # within the burst (40)
    await raw.send(*frames)
    assert sorted(decoded(f)[0] for f in await raw.acks(30)) == list(range(30))
    assert started == [str(i) for i in range(30)]
    assert len(handled) == 1  # the namespace CONNECT only
    await raw.close()


async def test_an_event_without_an_ack_id_gets_no_ack(
        rig: Rig, handled: list[str], started: list[str]) -> None:
    raw = await Raw.open(rig)
    await raw.send(send_frame("quiet"), send_frame("loud", 5))
    assert await raw.acks(1) == ['435[{"ok":true}]']  # nothing for "quiet", handled first
    assert started == ["quiet", "loud"]
    assert len(handled) == 1
    await raw.close()


async def test_an_event_before_the_namespace_connect_is_ignored(
        rig: Rig, handled: list[str], started: list[str]) -> None:
    raw = await Raw.open(rig, connect=False)
    await raw.send(send_frame("early", 1))
    await raw.connect(rig)
    await raw.send(send_frame("late", 2))
    assert await raw.acks(1) == ['432[{"ok":true}]']
    assert started == ["late"]
    assert handled[0] == send_frame("early", 1)[1:]  # python-socketio's path dropped it
    await raw.close()


async def test_binary_and_other_namespace_events_take_python_socketios_path(
        rig: Rig, handled: list[str], started: list[str]) -> None:
    raw = await Raw.open(rig)
    binary = '451-3["message:send",{"_placeholder":true,"num":0}]'
    await raw.send(binary)
    await raw.ws.send_bytes(b"\x01\x02")  # its attachment
    await raw.send('40/elsewhere,', '42/elsewhere,4["message:send",{}]', send_frame("after", 5))
    # The binary event is decoded (bytes are no payload object); /elsewhere is refused and
    # its event dropped, as python-socketio does; the "/" event after them still works.
    got = sorted([await raw.packet() for _ in range(3)])
    assert got[0].startswith('433[{"ok":false,"error":{"code":"invalid"')
    assert got[1:] == ['435[{"ok":true}]', '44/elsewhere,"Unable to connect"']
    assert started == ["after"]
    assert handled[1:] == [binary[1:], b"\x01\x02", "0/elsewhere,",
                           '2/elsewhere,4["message:send",{}]']
    await raw.close()


async def test_a_text_frame_while_attachments_are_due_is_one(
        rig: Rig, handled: list[str], started: list[str]) -> None:
    raw = await Raw.open(rig)
    # python-socketio takes the next frame as the attachment, whatever it is; so does the
    # fast path, by leaving it alone.
    header = '451-9["message:send",{"_placeholder":true,"num":0}]'
    await raw.send(header, send_frame("attachment", 5), send_frame("after", 6))
    first, second = await raw.acks(2)
    assert first.startswith('439[{"ok":false,"error":{"code":"invalid"')
    assert second == '436[{"ok":true}]'
    assert started == ["after"]
    assert handled[1:] == [header[1:], send_frame("attachment", 5)[1:]]
    await raw.close()


async def test_the_official_client_gets_its_acks(rig: Rig, handled: list[str]) -> None:
    for transports in (["websocket"], ["polling", "websocket"]):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(str(rig.server.make_url("")), auth={"token": rig.account.token},
                             transports=transports, wait_timeout=DEADLINE)
        before = len(handled)
        assert await client.call("presence:subscribe", {"user_ids": []},
                                 timeout=DEADLINE) == {"ok": True, "presence": []}
        ack = await client.call("room:join", {"room_id": "nope"}, timeout=DEADLINE)
        assert ack["error"]["code"] == "invalid"
        # Over websocket the fast path; on long-polling (or a websocket upgraded from it),
        # python-engineio's own.
        assert len(handled) - before == (0 if transports == ["websocket"] else 2)
        await client.disconnect()
