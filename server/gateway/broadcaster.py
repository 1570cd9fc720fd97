"""The Socket.IO adapter of actors.ports.Broadcaster.

Emits go through the server's client manager: with REDIS_URL set that is the Socket.IO Redis
manager, which delivers to this node's sockets first and then publishes to the other nodes,
so a room's or user's sockets are reached wherever they are connected.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio

log = logging.getLogger("hubbub.gateway")


_ROOM = "room:"


def room_of(room_id: str) -> str:
    return _ROOM + room_id


def room_id_of(room: object) -> str | None:
    """The chat room id of a Socket.IO room name made by `room_of`; None for other rooms."""
    if isinstance(room, str) and room.startswith(_ROOM):
        return room[len(_ROOM):]
    return None


USER_ROOM_PREFIX = "user:"  # server/gateway/manager.py keeps these rooms light


def user_room(user_id: str) -> str:
    return USER_ROOM_PREFIX + user_id


_WATCHERS = "presence:"


def watchers_of(user_id: str) -> str:
    return _WATCHERS + user_id


def channel_key(room: object) -> str | None:
    """The key under which emits to a Socket.IO room cross nodes on the room channels
    (storage/redis/room_channels.py), which reach only the nodes holding a socket in the room:
    a chat room's id, or a presence watchers' room's name. None: python-socketio's one
    channel, which every node reads (user rooms, a socket's own room)."""
    if isinstance(room, str):
        if room.startswith(_ROOM):
            return room[len(_ROOM):]
        if room.startswith(_WATCHERS):
            return room
    return None


def room_of_key(key: str) -> str:
    """The Socket.IO room of a `channel_key` (chat room ids hold no colon)."""
    return key if key.startswith(_WATCHERS) else room_of(key)


class SocketIOBroadcaster:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def _emit(self, target: str, event: str, data: dict[str, Any]) -> None:
        try:
            await self._sio.emit(event, data, to=target)
        except Exception:  # the port promises not to raise: delivery is at most once
            log.warning("emit of %s to %s failed", event, target, exc_info=True)

    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        await self._emit(room_of(room_id), event, data)

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        await self._emit(user_room(user_id), event, data)

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        await self._emit(watchers_of(user_id), event, data)

    # actors.ports.SessionEmitter (calls): a socket id is also a Socket.IO room of its own,
    # and skip_sid travels with the Redis manager's publish, so both reach any node.

    async def to_session(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        await self._emit(session_id, event, data)

    async def to_user_except(self, user_id: str, session_id: str, event: str,
                             data: dict[str, Any]) -> None:
        try:
            await self._sio.emit(event, data, to=user_room(user_id), skip_sid=session_id)
        except Exception:
            log.warning("emit of %s to %s failed", event, user_room(user_id), exc_info=True)

