"""actors.ports.RoomSockets over Socket.IO: members removed from a room stop receiving it.

A user's sockets on every node are listed in the session records (server/gateway/ports.py
SessionRecords: socket id -> node, written by the node holding each socket);
python-socketio's Redis manager forwards a leave for a socket held by another node to that
node.
"""

from __future__ import annotations

import logging

import socketio

from server.gateway.broadcaster import room_of
from server.gateway.ports import SessionRecords

log = logging.getLogger("hubbub.chat")


class SocketIORoomSockets:
    def __init__(self, sio: socketio.AsyncServer, sessions: SessionRecords) -> None:
        self._sio = sio
        self._sessions = sessions

    async def leave(self, room_id: str, user_id: str) -> None:
        try:
            for sid in await self._sessions.of_user(user_id):
                await self._sio.leave_room(sid, room_of(room_id))
        except Exception:  # the port promises not to raise
            log.warning("could not take %s's sockets out of room %s", user_id, room_id,
                        exc_info=True)
