"""The indexed Socket.IO managers (server/gateway/manager.py): the same behaviour as
python-socketio's managers (but that a socket cannot leave its own room), a disconnect, leave
or rooms listing that never scans the namespace's rooms, and no bidict for a socket's own
room nor for a user's room."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
import socketio
from socketio import packet

from server.gateway.manager import LocalManager, RedisManager

NS = "/"


class Recorder:
    """A python-socketio server around `manager`, with predictable sids and the packets it
    would send recorded instead of sent (and, for the Redis managers, what they would
    publish)."""

    def __init__(self, manager: socketio.AsyncManager) -> None:
        self.manager = manager
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
        ids = itertools.count()
        self.sio.eio.generate_id = lambda: f"sid{next(ids)}"  # type: ignore[method-assign]
        self.sent: list[tuple[str, str]] = []
        self.published: list[dict[str, Any]] = []

        async def send_eio_packet(eio_sid: str, eio_pkt: Any) -> None:
            self.sent.append((eio_sid, eio_pkt.data))

        async def send_packet(eio_sid: str, pkt: Any) -> None:
            self.sent.append((eio_sid, pkt.encode()))

        async def publish(data: dict[str, Any]) -> None:
            self.published.append(data)

        self.sio._send_eio_packet = send_eio_packet  # type: ignore[method-assign]
        self.sio._send_packet = send_packet  # type: ignore[method-assign]
        manager._publish = publish  # type: ignore[attr-defined]

    def state(self, names: list[str]) -> dict[str, Any]:
        """Everything observable: the members of each room of `names` (and of each socket's
        own room), each sid's rooms and connection state."""
        m = self.manager
        sids = sorted(m.rooms.get(NS, {}).get(None, {}))
        return {
            "rooms": {room: members for room in (None, *names, *sids)
                      if (members := dict(m.get_participants(NS, room)))},
            "rooms_of": {sid: sorted(map(str, m.get_rooms(sid, NS))) for sid in sids},
            "connected": {sid: m.is_connected(sid, NS) for sid in sids},
            "pre_connected": {sid: m.is_pre_connected(sid, NS) for sid in sids},
            "eio": {sid: m.eio_sid_from_sid(sid, NS) for sid in sids},
            "sent": sorted(self.sent),
            "published": [(d["method"], str(d.get("room"))) for d in self.published],
        }


ROOMS = [f"room:{i}" for i in range(6)] + [f"user:{i}" for i in range(3)]
PAIRS = [(socketio.AsyncManager, LocalManager),
         (lambda: socketio.AsyncRedisManager("redis://127.0.0.1:1/0"),
          lambda: RedisManager("redis://127.0.0.1:1/0"))]


async def _step(rec: Recorder, rng: random.Random, eio_sids: list[str]) -> None:
    """One random operation, as the server and the gateway perform them."""
    m = rec.manager
    live = sorted({sid for ns in m.rooms.values() for sid in ns.get(None, {})})
    rooms = ROOMS
    op = rng.choice(["connect", "connect", "pre", "enter", "enter", "leave", "emit",
                     "emit_skip", "close", "disconnect", "pre_disconnect"])
    if op in ("connect", "pre"):
        # Now and then a second connect of the same client (the server pre-connects first
        # and refuses it when that answers None).
        again = op == "pre" and eio_sids and rng.random() < 0.3
        eio = rng.choice(eio_sids) if again else f"eio{len(eio_sids)}"
        eio_sids.append(eio)
        if op == "connect":
            await m.connect(eio, NS)
        else:
            await m.pre_connect(eio, NS)
        return
    if not live:
        return
    sid = rng.choice(live)
    if op == "enter":
        await m.enter_room(sid, NS, rng.choice(rooms))
    elif op == "leave":
        await m.leave_room(sid, NS, rng.choice(rooms))  # never its own: it stays in it
    elif op == "emit":
        await m.emit("e", {"n": 1}, NS, room=rng.choice([*rooms, sid, None]))
    elif op == "emit_skip":
        await m.emit("e", [1, 2], NS, room=rng.choice(rooms), skip_sid=sid)
    elif op == "close":
        await m.close_room(rng.choice(rooms), NS)
    elif op == "pre_disconnect":
        m.pre_disconnect(sid, NS)
    else:
        await m.disconnect(sid, NS, ignore_queue=True)


@pytest.mark.parametrize(("stock", "indexed"), PAIRS, ids=["local", "redis"])
@pytest.mark.parametrize("seed", range(8))
async def test_behaves_as_python_socketio(stock: Any, indexed: Any, seed: int) -> None:
    reference, ours = Recorder(stock()), Recorder(indexed())
    for rec in (reference, ours):
        rng = random.Random(seed)
        eio_sids: list[str] = []
        for _ in range(300):
            await _step(rec, rng, eio_sids)
    assert ours.state(ROOMS) == reference.state(ROOMS)


async def test_rooms_listing_and_emits_follow_joins_and_leaves() -> None:
    rec = Recorder(LocalManager())
    m = rec.manager
    a, b = await m.connect("ea", NS), await m.connect("eb", NS)
    await m.enter_room(a, NS, "room:1")
    await m.enter_room(b, NS, "room:1")
    await m.enter_room(a, NS, "user:a")
    assert m.get_rooms(a, NS) == [a, "room:1", "user:a"]
    await m.emit("hi", "x", NS, room="room:1", skip_sid=b)
    assert [eio for eio, _ in rec.sent] == ["ea"]
    await m.leave_room(a, NS, "room:1")
    assert m.get_rooms(a, NS) == [a, "user:a"]
    assert dict(m.get_participants(NS, "room:1")) == {b: "eb"}
    with pytest.raises(ValueError, match="sid room"):
        await m.enter_room(a, NS, b)  # another socket's own room
    m.pre_disconnect(b, NS)
    assert not m.is_connected(b, NS)
    await m.disconnect(b, NS)
    assert "room:1" not in m.rooms[NS]  # its last member left
    assert m.get_rooms(b, NS) == [] and m.eio_sid_from_sid(b, NS) is None
    await m.disconnect(a, NS)
    assert m.rooms == {} and m.rooms_of == {} and m.light_rooms == {}
    assert m.pending_connect == {} and m.pending_disconnect == {}


class NoScan(dict):  # type: ignore[type-arg]
    """A namespace's room table that fails the test when anything walks through it."""

    def _scanned(self, *args: Any) -> NoReturn:
        raise AssertionError("the namespace's rooms were scanned")

    __iter__ = items = keys = values = copy = _scanned  # type: ignore[assignment]


@pytest.mark.parametrize("make", [LocalManager, lambda: RedisManager("redis://127.0.0.1:1/0")],
                         ids=["local", "redis"])
async def test_a_disconnect_touches_only_that_sockets_rooms(make: Any) -> None:
    rec = Recorder(make())
    m = rec.manager
    sids = []
    for i in range(2000):
        sid = await m.connect(f"e{i}", NS)
        await m.enter_room(sid, NS, f"user:{i}")
        await m.enter_room(sid, NS, f"room:{i // 10}")
        sids.append(sid)
    m.rooms[NS] = NoScan(m.rooms[NS])
    for sid in sids[:1000]:
        assert m.get_rooms(sid, NS) == [sid, f"user:{sids.index(sid)}",
                                        f"room:{sids.index(sid) // 10}"]
        await m.leave_room(sid, NS, f"user:{sids.index(sid)}")
        m.pre_disconnect(sid, NS)
        assert m.is_connected(sid, NS) is False
        await m.disconnect(sid, NS, ignore_queue=True)
    await m.emit("still", "here", NS, room="room:150")
    assert sorted(eio for eio, _ in rec.sent) == sorted(f"e{i}" for i in range(1500, 1510))
    assert len(m.rooms_of[NS]) == 1000
    assert len(dict.keys(m.rooms[NS])) == 1 + 100  # None and the chat rooms: no sid rooms
    assert len(m.light_rooms[NS]) == 1000  # the remaining sockets' user rooms
    assert list(m.get_participants(NS, "user:1999")) == [(sids[1999], "e1999")]


async def test_a_second_connect_of_one_client_is_refused_without_leftovers() -> None:
    m = Recorder(LocalManager()).manager
    sid = await m.connect("same", NS)
    assert await m.pre_connect("same", NS) is None
    assert m.get_rooms(sid, NS) == [sid]
    assert list(m.rooms_of[NS]) == [sid]


async def test_callbacks_are_forgotten_on_disconnect() -> None:
    rec = Recorder(LocalManager())
    m = rec.manager
    sid = await m.connect("e", NS)
    await m.emit("ask", "x", NS, room=sid, callback=lambda *args: None)
    assert sid in m.callbacks and rec.sent[0][1].startswith(f"{packet.EVENT}1")
    await m.disconnect(sid, NS)
    assert sid not in m.callbacks


def test_fast_emit_leaves_binary_data_to_python_socketio() -> None:
    """msgspec would write bytes as base64 text; python-socketio sends them as attachments."""
    manager = LocalManager()
    manager.server = SimpleNamespace(eio=SimpleNamespace(links=object()))
    assert manager._packet("e", {"a": [1, {"b": "x"}]}, "/") == '2["e",{"a":[1,{"b":"x"}]}]'
    assert manager._packet("e", {"a": [1, {"b": b"x"}]}, "/") is None
    assert manager._packet("e", (b"x", 2), "/") is None  # two arguments, the first bytes
    assert manager._packet("e", bytearray(b"x"), "/chat") is None


class Channels:
    """server.gateway.ports.RoomChannels, recording what would cross to other nodes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, list[str]]] = []

    async def hold(self, room_id: str) -> None: ...

    async def release(self, room_id: str) -> None: ...

    async def publish(self, room_id: str, packet: str, skip: list[str]) -> int:
        self.published.append((room_id, packet, skip))
        return 1


async def test_chat_and_presence_rooms_cross_nodes_on_their_own_channels() -> None:
    """A chat room's and a presence watchers' room's emits go out once on their room
    channel, already encoded; emits to a user's room still take python-socketio's channel."""
    manager = RedisManager("redis://127.0.0.1:1/0")
    rec, channels = Recorder(manager), Channels()
    manager.room_channels = channels
    # The direct writes to this node's sockets: none of them is in these rooms.
    manager.server.eio.links = SimpleNamespace(write=lambda eio_sid, frame: None)
    a = await manager.connect("ea", NS)

    await manager.emit("message:new", {"seq": 1}, NS, room="room:r1")
    await manager.emit("presence", {"status": "online"}, NS, room="presence:u1",
                       skip_sid=a)
    await manager.emit("notification", {"n": 1}, NS, room="user:u1")

    assert channels.published == [("r1", '2["message:new",{"seq":1}]', []),
                                  ("presence:u1", '2["presence",{"status":"online"}]', [a])]
    assert [(d["method"], d["room"]) for d in rec.published] == [("emit", "user:u1")]
