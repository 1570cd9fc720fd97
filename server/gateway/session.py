"""Connection lifecycle: JWT on connect, `auth:refresh` on a live connection, and closing a
connection whose token expires unrefreshed."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import socketio

from actors.errors import ActorError
from actors.user import UserActor
from protocols.socket import FORBIDDEN, UNAUTHORIZED, AuthRefresh, RefreshAck
from protocols.user_messages import SessionClosed, SessionOpened
from server.gateway import acks, calls
from server.gateway.broadcaster import user_room
from server.gateway.connections import Connection, Gateway
from server.gateway.limits import TokenBucket
from server.http.problems import Unauthorized

log = logging.getLogger("hubbub.gateway")
# Socket.IO clients see this as the connect_error's `data` (and the first argument as
# `message`).
_UNAUTHORIZED = {"code": "unauthorized"}
_UNAVAILABLE = {"code": "unavailable"}


def _refused(code: dict[str, str]) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(code["code"], code)


async def connect(gw: Gateway, sid: str, auth: Any) -> None:
    """Accept the socket when `auth` carries a valid access token; refuse it otherwise."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token or gw.authenticate is None:
        raise _refused(_UNAUTHORIZED)
    try:
        principal = gw.authenticate(token)
    except Unauthorized:
        raise _refused(_UNAUTHORIZED) from None
    conn = Connection(sid=sid, user_id=principal.user_id, expires_at=principal.expires_at,
                      bucket=TokenBucket(gw.events_per_second, gw.event_burst))
    # Registered before the UserActor hears of it, so the actor's session check
    # (LocalSessions) never finds a session it was told about missing here.
    gw.connections[sid] = conn
    try:
        await gw.system.ref(UserActor, conn.user_id).tell(
            SessionOpened(session_id=sid, node_id=gw.node_id))
    except ActorError:  # the system is stopping: this node takes no new sockets
        del gw.connections[sid]
        raise _refused(_UNAVAILABLE) from None
    await gw.sio.enter_room(sid, user_room(conn.user_id))
    _arm_expiry(gw, conn)


async def disconnect(gw: Gateway, sid: str) -> None:
    conn = gw.connections.pop(sid, None)
    if conn is None:
        return
    if conn.expiry is not None:
        conn.expiry.cancel()
    await calls.session_gone(gw, conn)
    try:
        await gw.system.ref(UserActor, conn.user_id).tell(SessionClosed(session_id=sid))
    except ActorError:
        # Stopping: the UserActor's saved record goes stale by itself (alive_until).
        log.info("session close of %s not delivered: actor system stopped", conn.user_id)


async def refresh(gw: Gateway, conn: Connection, event: AuthRefresh) -> dict[str, Any]:
    assert gw.authenticate is not None
    try:
        principal = gw.authenticate(event.token)
    except Unauthorized as exc:
        return acks.error(UNAUTHORIZED, exc.detail or "the token is not valid")
    if principal.user_id != conn.user_id:
        return acks.error(FORBIDDEN, "the token belongs to another user")
    conn.expires_at = principal.expires_at
    _arm_expiry(gw, conn)
    return acks.ok(RefreshAck(expires_at=datetime.fromtimestamp(conn.expires_at, UTC)))


def _arm_expiry(gw: Gateway, conn: Connection) -> None:
    if conn.expiry is not None:
        conn.expiry.cancel()
    delay = max(0.0, conn.expires_at - time.time())
    conn.expiry = asyncio.get_running_loop().call_later(delay, _expire, gw, conn)


def _expire(gw: Gateway, conn: Connection) -> None:
    conn.expiry = None
    if gw.connections.get(conn.sid) is not conn:
        return
    if conn.expires_at > time.time():
        _arm_expiry(gw, conn)  # loop timers may fire a hair early against the wall clock
        return
    log.info("closing a socket whose token expired", extra={"user_id": conn.user_id})
    gw.spawn(gw.sio.disconnect(conn.sid), name=f"expire:{conn.sid}")


class LocalSessions:
    """actors.ports.SessionDirectory for this node: a session of ours is gone when we no
    longer hold it, or when Engine.IO has lost its transport while Socket.IO never reported
    the close (a client that vanished mid-handshake). Such a zombie is forgotten here too."""

    def __init__(self, gw: Gateway) -> None:
        self._gw = gw

    async def closed(self, sessions: dict[str, str]) -> set[str]:
        gw = self._gw
        gone = set()
        for sid, node in sessions.items():
            if node != gw.node_id:
                continue
            conn = gw.connections.get(sid)
            if conn is not None and self._transport_alive(sid):
                continue
            gone.add(sid)
            if conn is not None:
                log.info("forgetting a socket that vanished without a close",
                         extra={"user_id": conn.user_id})
                gw.connections.pop(sid, None)
                if conn.expiry is not None:
                    conn.expiry.cancel()
        return gone

    def _transport_alive(self, sid: str) -> bool:
        eio_sid = self._gw.sio.manager.eio_sid_from_sid(sid, "/")
        socket = self._gw.sio.eio.sockets.get(eio_sid) if eio_sid else None
        return socket is not None and not socket.closed
