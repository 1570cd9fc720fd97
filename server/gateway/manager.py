"""python-socketio client managers whose disconnect costs O(rooms of that socket).

python-socketio keeps `rooms[namespace][room]` (a bidict sid <-> eio_sid per room) and nothing
the other way round, so `basic_disconnect` and `get_rooms` copy and scan every room of the
namespace, and its pending connect/disconnect lists are scanned on every `is_connected`. Every
Hubbub socket is in at least three rooms (its own, its user's, its chat rooms'), so when N
sockets drop at once the loop does O(N^2) work: minutes at 20,000 sockets.

`IndexedRooms` adds the reverse index `sid -> rooms` (kept in step by `basic_enter_room` and
`basic_leave_room`, which every join, leave, close and disconnect goes through) and keeps the
pending sets as dicts. `rooms` keeps python-socketio's shape for the rooms it holds, but two
kinds of rooms are kept lighter, since a bidict per room costs ~480 bytes and every socket
had two of its own: a socket's own room is not stored at all (the namespace's `None` room
already maps its sid to its Engine.IO sid), and a user's room (`user:<id>`: the user's
sockets, one or a few) holds its members' sids in a tuple (`light_rooms`). Participants,
emits, closes and listings see them as python-socketio's rooms, except that a socket cannot
leave its own room. It sits below AsyncManager in the method
resolution order (`class X(AsyncManager, IndexedRooms)`): AsyncManager's coroutines call
`super().connect(...)` and the `basic_*` methods, which land here.

`FastEmit` replaces python-socketio's local delivery of an emit (a task per recipient, each
through Engine.IO's per-socket queue): the packet is encoded once, framed once, and written
to each recipient's websocket directly (server/gateway/direct.py).

`LocalManager` is the in-process manager; `RedisManager` the Socket.IO Redis manager used
with REDIS_URL. The Redis manager publishes every emit for the other nodes (python-socketio
pickles it; each node delivers it to its own sockets); a node that knows it is alone in the
cluster (`alone`, set by the cluster wiring) publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any

import msgspec
from bidict import ValueDuplicationError, bidict
from socketio import AsyncManager, AsyncRedisManager
from socketio.base_manager import BaseManager

from server.gateway.broadcaster import USER_ROOM_PREFIX, channel_key
from server.gateway.direct import message_frame
from server.gateway.json_codec import holds_binary
from server.gateway.ports import RoomChannels

Room = Any  # a room name; None is the namespace's room of every connected sid
Members = tuple[str, ...]  # a light room's sids, in join order


def _light(room: Room) -> bool:
    return isinstance(room, str) and room.startswith(USER_ROOM_PREFIX)


class IndexedRooms(BaseManager):
    def __init__(self) -> None:
        super().__init__()
        # namespace -> sid -> the rooms it is in (dict as an ordered set: join order); None
        # and the sid's own room included, as in `rooms`.
        self.rooms_of: dict[str, dict[str, dict[Room, None]]] = {}
        # namespace -> room -> its sids: the rooms kept light (module docstring).
        self.light_rooms: dict[str, dict[str, Members]] = {}
        # namespace -> {sid: None}; python-socketio keeps lists, scanned on every check.
        self.pending_connect: dict[str, dict[str, None]] = {}  # type: ignore[assignment]
        self.pending_disconnect: dict[str, dict[str, None]] = {}  # type: ignore[assignment]

    # -- connect and disconnect ---------------------------------------------------------------

    def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        sid = self.server.eio.generate_id()
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None  # this Engine.IO client is connected to the namespace already
        self.pending_connect.setdefault(namespace, {})[sid] = None
        return sid

    def connect(self, sid: str, namespace: str) -> str | None:
        if not self.is_pre_connected(sid, namespace):
            # A complete connection attempt: `sid` is the Engine.IO sid. (AsyncManager.connect
            # pre-connects first; None: that client is connected already.)
            sid = IndexedRooms.pre_connect(self, sid, namespace) if sid is not None else None
            if sid is None:
                return None
        _pop(self.pending_connect, namespace, sid)
        return sid

    def is_pre_connected(self, sid: str, namespace: str) -> bool:
        if sid not in self.pending_connect.get(namespace, ()):
            return False
        return self._eio_sid(sid, namespace) is not None

    def is_connected(self, sid: str, namespace: str) -> bool:
        if sid in self.pending_connect.get(namespace, ()) or \
                sid in self.pending_disconnect.get(namespace, ()):
            return False  # connecting or disconnecting
        return self._eio_sid(sid, namespace) is not None

    def _eio_sid(self, sid: str, namespace: str) -> str | None:
        try:
            return self.rooms[namespace][None].get(sid)  # type: ignore[no-any-return]
        except KeyError:
            return None

    def pre_disconnect(self, sid: str, namespace: str) -> str | None:
        self.pending_disconnect.setdefault(namespace, {})[sid] = None
        return self.rooms[namespace][None].get(sid)  # type: ignore[no-any-return]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = _pop(self.rooms_of, namespace, sid)
        for room in rooms or ():
            self._leave(sid, namespace, room)
        self.callbacks.pop(sid, None)
        _pop(self.pending_connect, namespace, sid)
        _pop(self.pending_disconnect, namespace, sid)

    # -- rooms ----------------------------------------------------------------------------------

    def basic_enter_room(self, sid: str, namespace: str, room: Room,
                         eio_sid: str | None = None) -> None:
        if eio_sid is None and namespace not in self.rooms:
            raise ValueError("sid is not connected to requested namespace")
        if sid != room and self.is_sid_room(namespace, room):
            raise ValueError("cannot enter a sid room")
        rooms = self.rooms.setdefault(namespace, {})
        if eio_sid is None:
            eio_sid = rooms[None][sid]
        if room == sid and room is not None:
            return  # its own room: implied by the `None` room
        if _light(room):
            light = self.light_rooms.setdefault(namespace, {})
            held = light.get(room, ())
            if sid not in held:
                light[room] = (*held, sid)
            self.rooms_of.setdefault(namespace, {}).setdefault(sid, {})[room] = None
            return
        members = rooms.get(room)
        if members is None:
            members = rooms[room] = bidict()
        try:
            members[sid] = eio_sid  # ValueDuplicationError: the eio sid is in there already
        except ValueDuplicationError:
            if not members:
                del rooms[room]
            raise
        self.rooms_of.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Room) -> None:
        of_sid = self.rooms_of.get(namespace, {}).get(sid)
        if of_sid is not None and room in of_sid:
            del of_sid[room]
            if not of_sid:
                _pop(self.rooms_of, namespace, sid)
        self._leave(sid, namespace, room)

    def _leave(self, sid: str, namespace: str, room: Room) -> None:
        """Take `sid` out of `room` in `rooms` (the index is the caller's business)."""
        if room == sid:
            return  # a socket stays in its own room while connected
        if _light(room):
            light = self.light_rooms.get(namespace)
            held = light.get(room) if light is not None else None
            if light is None or held is None or sid not in held:
                return
            rest = tuple(s for s in held if s != sid)
            if rest:
                light[room] = rest
            else:
                del light[room]
                if not light:
                    del self.light_rooms[namespace]
            return
        rooms = self.rooms.get(namespace)
        if rooms is None:
            return
        members = rooms.get(room)
        if members is None or sid not in members:
            return
        del members[sid]
        if not members:
            del rooms[room]
            if not rooms:
                del self.rooms[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Room]:
        joined = self.rooms_of.get(namespace, {}).get(sid)
        if joined is None:
            return []
        return [sid, *(room for room in joined if room is not None)]

    def get_participants(self, namespace: str, room: Room) -> Iterator[tuple[str, str]]:
        """(sid, Engine.IO sid) of this node's sockets in `room` (or in any of a list of
        rooms), as python-socketio's: a copy, so the caller may await between them."""
        if isinstance(room, (list, tuple)):
            found: dict[str, str] = {}
            for each in room:
                found.update(self._participants(namespace, each))
            yield from found.items()
            return
        yield from self._participants(namespace, room)

    def _participants(self, namespace: str, room: Room) -> list[tuple[str, str]]:
        rooms = self.rooms.get(namespace)
        if rooms is None:
            return []
        members = rooms.get(room)
        if members is not None:
            return list(members._fwdm.items())
        connected = rooms.get(None)
        if connected is None or not isinstance(room, str):
            return []
        eio_sids = connected._fwdm
        if room in eio_sids:
            return [(room, eio_sids[room])]  # a socket's own room
        held = self.light_rooms.get(namespace, {}).get(room, ())
        return [(sid, eio_sids[sid]) for sid in held if sid in eio_sids]


def _pop(table: dict[str, dict[str, Any]], namespace: str, sid: str | None) -> Any:
    """Remove and return table[namespace][sid] (None when absent); the namespace goes once
    it is empty."""
    entries = table.get(namespace)
    if entries is None:
        return None
    value = entries.pop(sid, None) if sid is not None else None
    if not entries:
        del table[namespace]
    return value


_encode = msgspec.json.Encoder().encode



class FastEmit(AsyncManager):
    """AsyncManager whose delivery to this node's sockets encodes and frames a packet once.

    Emits with a callback (a distinct ack id per recipient) and binary payloads take
    python-socketio's own path."""

    async def emit(self, event: str, data: Any, namespace: str, room: Room = None,
                   skip_sid: Any = None, callback: Any = None, to: Room = None,
                   **kwargs: Any) -> None:
        room = to or room
        packet = self._packet(event, data, namespace) if callback is None else None
        if packet is None:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        await self.deliver_local(namespace, room, packet, _skipped(skip_sid))
        return None

    def _packet(self, event: str, data: Any, namespace: str) -> str | None:
        """The encoded Socket.IO EVENT packet; None when python-socketio must handle it (no
        direct links, or binary data)."""
        if getattr(self.server.eio, "links", None) is None:
            return None
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        if holds_binary(args):
            return None  # a binary packet (msgspec would write bytes as base64 text)
        try:
            body = _encode([event, *args]).decode()
        except (TypeError, UnicodeEncodeError, OverflowError):
            # What only the standard library encodes (a lone surrogate, a huge int):
            # python-socketio's path, with GatewayPacket's JSON.
            return None
        # "2": a Socket.IO EVENT; a namespace other than "/" is written before the data.
        return "2" + body if namespace == "/" else f"2{namespace},{body}"

    async def deliver_local(self, namespace: str, room: Room, packet: str,
                            skip: Collection[str] = ()) -> None:
        """Write an encoded packet to this node's sockets in `room`."""
        if namespace not in self.rooms:
            return
        eio = self.server.eio
        links = eio.links
        frame = message_frame(packet)
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            if not links.write(eio_sid, frame):
                await eio.queue_message(eio_sid, packet)


def _skipped(skip_sid: Any) -> Collection[str]:
    if skip_sid is None:
        return ()
    return skip_sid if isinstance(skip_sid, list) else (skip_sid,)


class LocalManager(FastEmit, IndexedRooms):
    """python-socketio's in-process manager, with the per-socket room index."""


class RedisManager(AsyncRedisManager, FastEmit, IndexedRooms):
    """python-socketio's Redis manager, with the per-socket room index. Emits to a chat room
    or a presence watchers' room go to the room's own channel when `room_channels` is set
    (server/gateway/setup.py): only nodes holding sockets of the room receive them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set by the cluster wiring: True while this node is the only live node, so that
        # nobody else needs its emits.
        self.alone: Callable[[], bool] = lambda: False
        self.room_channels: RoomChannels | None = None

    async def emit(self, event: str, data: Any, namespace: str | None = None,
                   room: Room = None, skip_sid: Any = None, callback: Any = None,
                   to: Room = None, **kwargs: Any) -> None:
        room = to or room
        namespace = namespace or "/"
        alone = self.alone()
        channels = self.room_channels
        key = channel_key(room) if channels is not None and namespace == "/" else None
        packet = None
        if callback is None and (alone or key is not None):
            packet = self._packet(event, data, namespace)
        if packet is None:
            # python-socketio's way: delivered here, and pickled on the one channel every
            # node reads.
            return await super().emit(event, data, namespace=namespace, room=room,
                                      skip_sid=skip_sid, callback=callback, **kwargs)
        skip = _skipped(skip_sid)
        await self.deliver_local(namespace, room, packet, skip)
        if not alone and channels is not None and key is not None:
            await channels.publish(key, packet, list(skip))
        return None
