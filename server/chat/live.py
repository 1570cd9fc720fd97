"""actors.ports.RoomSockets over Socket.IO: members removed from a room stop receiving it.

A user's sockets on every node are listed in their presence record (their UserActor keeps
it: Socket.IO session id -> node); python-socketio's Redis manager forwards a leave for a
socket held by another node to that node.
"""

from __future__ import annotations

import logging

import socketio

from actors.ports import PresenceStore
from server.gateway.broadcaster import room_of

log = logging.getLogger("hubbub.chat")


class SocketIORoomSockets:
    def __init__(self, sio: socketio.AsyncServer, presence: PresenceStore) -> None:
        self._sio = sio
        self._presence = presence

    async def leave(self, room_id: str, user_id: str) -> None:
        try:
            record = await self._presence.load(user_id)
            for sid in record.sessions if record else ():
                await self._sio.leave_room(sid, room_of(room_id))
        except Exception:  # the port promises not to raise
            log.warning("could not take %s's sockets out of room %s", user_id, room_id,
                        exc_info=True)
