"""Connection lifecycle: JWT on connect, `auth:refresh` on a live connection, closing a
connection whose token expires unrefreshed, and closing every socket of a user who signed
out everywhere (`disconnect_user`); the session records of this node's sockets, and the
SessionDirectory that UserActors read every node's records through.

A socket is in the session records (server/gateway/ports.py SessionRecords) while this node
holds it: added before the user's UserActor is told SessionOpened, removed before it is told
SessionClosed, so an actor that (re)loads the records, wherever in the cluster it runs,
neither misses a session it was told about nor revives one it was told is closed.

With Redis behind the records, the watermark cache and presence, a connect records the socket
and reads the user's cached token watermark and presence record in one script (storage/redis/
sessions.py `open`): one round trip where an add, a cache read and the actor's own reads of
the records and the presence were four. (A watermark not cached reads as 0 while the cache is
marked complete, as it mostly is: server/auth/watermark_refresher.py; no Postgres read.) The
presence snapshot rides on SessionOpened when the socket is the user's only session
(actors/user.py adopts it, if it still holds, instead of loading)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import socketio

from actors.errors import ActorError
from actors.user import UserActor
from protocols.socket import FORBIDDEN, UNAUTHORIZED, AuthRefresh, RefreshAck
from protocols.user_messages import SessionClosed, SessionOpened
from server.auth.authenticator import (
    NOT_READ,
    authenticate,
    still_valid,
    verify_token,
    watermark_keys,
)
from server.gateway import acks, calls, chat, presence
from server.gateway.broadcaster import user_room
from server.gateway.connections import Connection, Gateway
from server.gateway.deadlines import Deadlines
from server.gateway.limits import TokenBucket
from server.gateway.ports import SessionRecords
from server.http.problems import Unauthorized
from storage.errors import StorageError
from storage.redis.presence import RedisPresenceStore
from storage.redis.sessions import OpenedSession, RedisSessionRecords

log = logging.getLogger("hubbub.gateway")
SWEEP_INTERVAL = 30.0  # seconds between two passes of `sweep`
MAX_UNREMOVED = 100_000  # failed removes kept for a retry; beyond, records just expire
# Socket.IO clients see this as the connect_error's `data` (and the first argument as
# `message`).
_UNAUTHORIZED = {"code": "unauthorized"}
_UNAVAILABLE = {"code": "unavailable"}


def _refused(code: dict[str, str]) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(code["code"], code)


async def connect(gw: Gateway, sid: str, auth: Any) -> None:
    """Accept the socket when `auth` carries a valid access token; refuse it otherwise, and
    with `unavailable` when its session cannot be recorded or the actor system stops."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token or gw.authenticate is None:
        raise _refused(_UNAUTHORIZED)
    try:
        # Signature, claims and expiry now; revocation once the socket is recorded (below),
        # which a sign-out racing this connect needs anyway: one watermark read per connect.
        principal = verify_token(gw.authenticate, token)
    except Unauthorized:
        raise _refused(_UNAUTHORIZED) from None
    conn = Connection(sid=sid, user_id=principal.user_id, expires_at=principal.expires_at,
                      bucket=TokenBucket(gw.events_per_second, gw.event_burst))
    # Held here before it is recorded, so the directory's zombie check never finds a record
    # of ours without its socket; recorded before the UserActor hears of it, so an actor
    # (re)activated in between, on any node, finds it.
    gw.connections[sid] = conn
    try:
        opened = await _record(gw, conn)
    except StorageError:
        gw.connections.pop(sid, None)
        log.warning("refusing a socket: its session could not be recorded", exc_info=True,
                    extra={"user_id": conn.user_id})
        raise _refused(_UNAVAILABLE) from None
    # A sign-out everywhere raises the watermark, then lists the user's recorded sockets to
    # close them: a connect racing it was either listed there or sees the watermark here
    # (read after the record was written: by the same script, or by `still_valid`).
    # (Listed but not yet fully connected, its close would be ignored: that takes a sign-out
    # within the next few statements; such a socket can still not auth:refresh, and it is
    # closed when its token expires.)
    try:
        valid = await still_valid(gw.authenticate, principal,
                                  NOT_READ if opened is None else opened.watermark)
    except Exception:
        log.warning("refusing a socket: its token could not be checked", exc_info=True)
        valid = None
    if not valid:
        gw.connections.pop(sid, None)
        await _unrecord(gw, conn)
        raise _refused(_UNAUTHORIZED if valid is False else _UNAVAILABLE)
    # The snapshot only when this socket is the user's only session: an actor that adopts
    # it then starts with exactly the sessions the records hold.
    snapshot = opened.presence if opened is not None and opened.sessions == 1 else None
    try:
        await gw.system.ref(UserActor, conn.user_id).tell(
            SessionOpened(session_id=sid, node_id=gw.node_id, presence=snapshot))
    except ActorError:  # the system is stopping: this node takes no new sockets
        gw.connections.pop(sid, None)
        await _unrecord(gw, conn)
        raise _refused(_UNAVAILABLE) from None
    await gw.sio.enter_room(sid, user_room(conn.user_id))
    _arm_expiry(gw, conn)


async def disconnect(gw: Gateway, sid: str) -> None:
    conn = gw.connections.pop(sid, None)
    if conn is None:
        return
    await _gone(gw, conn)


async def _gone(gw: Gateway, conn: Connection) -> None:
    """A socket no longer in gw.connections is gone (closed, or found dead): its record,
    its calls and its user's actor learn of it."""
    if conn.expiry is not None:
        conn.expiry.cancel()
    # Out of the records before the UserActor hears of it, so no reload brings it back.
    await _unrecord(gw, conn)
    await chat.socket_gone(gw, conn)
    await presence.socket_gone(gw, conn)
    await calls.session_gone(gw, conn)
    try:
        await gw.system.ref(UserActor, conn.user_id).tell(SessionClosed(session_id=conn.sid))
    except ActorError:
        # Stopping: the UserActor's saved record goes stale by itself (alive_until).
        log.info("session close of %s not delivered: actor system stopped", conn.user_id)


async def refresh(gw: Gateway, conn: Connection, event: AuthRefresh) -> dict[str, Any]:
    assert gw.authenticate is not None
    try:
        principal = await authenticate(gw.authenticate, event.token)
    except Unauthorized as exc:
        return acks.error(UNAUTHORIZED, exc.detail or "the token is not valid")
    if principal.user_id != conn.user_id:
        return acks.error(FORBIDDEN, "the token belongs to another user")
    conn.expires_at = principal.expires_at
    _arm_expiry(gw, conn)
    await _keep_recorded(gw, conn)
    return acks.ok(RefreshAck(expires_at=datetime.fromtimestamp(conn.expires_at, UTC)))


async def disconnect_user(gw: Gateway, user_id: str) -> None:
    """Close every socket of the user, on every node (they signed out everywhere). This
    node's close here; another node's through the Socket.IO client manager: with REDIS_URL
    the Redis manager forwards a disconnect of a socket it does not hold to every node, and
    the one holding it closes it. The user's sockets are those of the session records (all
    nodes) and, should a record be missing, this node's own."""
    sids = {sid for sid, conn in gw.connections.items() if conn.user_id == user_id}
    try:
        sids.update(await _records(gw).of_user(user_id))
    except StorageError:
        log.warning("closing only this node's sockets of a signed-out user: the session "
                    "records are unavailable", exc_info=True, extra={"user_id": user_id})
    if sids:
        log.info("closing %d socket(s) of a user who signed out everywhere", len(sids),
                 extra={"user_id": user_id})
    for sid in sids:
        try:
            await gw.sio.disconnect(sid)
        except Exception:  # e.g. Redis down for a remote one: still close the others
            log.warning("a socket of a signed-out user was not closed", exc_info=True,
                        extra={"user_id": user_id})


def _arm_expiry(gw: Gateway, conn: Connection) -> None:
    if conn.expiry is not None:
        conn.expiry.cancel()
    if gw.expiries is None:
        gw.expiries = Deadlines(functools.partial(_expire, gw))
    conn.expiry = gw.expiries.add(conn.expires_at, conn)


def _expire(gw: Gateway, conn: Connection) -> None:
    conn.expiry = None
    if gw.connections.get(conn.sid) is not conn:
        return
    if conn.expires_at > time.time():
        _arm_expiry(gw, conn)  # refreshed meanwhile, or a loop timer firing a hair early
        return
    log.info("closing a socket whose token expired", extra={"user_id": conn.user_id})
    gw.spawn(gw.sio.disconnect(conn.sid), name=f"expire:{conn.sid}")


# -- Session records ----------------------------------------------------------------------


def _records(gw: Gateway) -> SessionRecords:
    assert gw.sessions_store is not None, "the gateway builds its session records at startup"
    return gw.sessions_store


async def _record(gw: Gateway, conn: Connection) -> OpenedSession | None:
    """Record the socket. With Redis behind the records, the watermark cache and presence,
    read the user's cached watermark and presence record in the same script (the module
    docstring); None after a plain add otherwise."""
    records, presence = _records(gw), gw.presence
    keys = watermark_keys(gw.authenticate, conn.user_id) if gw.authenticate else None
    if keys is not None and isinstance(records, RedisSessionRecords) \
            and isinstance(presence, RedisPresenceStore):
        return await records.open(conn.user_id, conn.sid, gw.node_id,
                                  watermark_key=keys.watermark, complete_key=keys.complete,
                                  presence_key=presence.key(conn.user_id))
    await records.add(conn.user_id, conn.sid, gw.node_id)
    return None


async def _unrecord(gw: Gateway, conn: Connection) -> None:
    try:
        await _records(gw).remove(conn.user_id, conn.sid, gw.node_id)
    except StorageError:
        # Every node's UserActors trust this record until it goes: `sweep` retries.
        log.warning("a closed session stays recorded for now", exc_info=True,
                    extra={"user_id": conn.user_id})
        if len(gw.unremoved) < MAX_UNREMOVED:
            gw.unremoved.add((conn.user_id, conn.sid))


async def _keep_recorded(gw: Gateway, conn: Connection) -> None:
    """Add the record again, pushing its expiry ahead: a socket kept open by refreshes
    outlives the records' TTL. Best effort."""
    records = _records(gw)
    try:
        await records.add(conn.user_id, conn.sid, gw.node_id)
    except StorageError:
        log.warning("session record not refreshed", exc_info=True,
                    extra={"user_id": conn.user_id})
        return
    if gw.connections.get(conn.sid) is not conn:
        # Closed while we wrote: its disconnect may have removed the record before our add.
        await _unrecord(gw, conn)


async def sweep(gw: Gateway) -> None:
    """One pass of this node's housekeeping of its sockets' records (the UserActors of every
    node trust them): a socket whose Engine.IO transport is gone while Socket.IO never
    reported the close is closed here as if it had been (record removed, actors told), and
    removes that failed are retried. Storage failures are logged; the next pass retries."""
    for sid in [sid for sid in gw.connections if not transport_alive(gw, sid)]:
        log.info("closing a socket that vanished without a close")
        await disconnect(gw, sid)
    records = _records(gw)
    for user_id, sid in list(gw.unremoved):
        try:
            await records.remove(user_id, sid, gw.node_id)
        except StorageError:
            log.warning("closed sessions still recorded: %d", len(gw.unremoved))
            return
        gw.unremoved.discard((user_id, sid))


async def sweep_forever(gw: Gateway, interval: float = SWEEP_INTERVAL) -> None:
    """Run `sweep` every `interval` seconds (a gateway task, cancelled at shutdown)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep(gw)
        except Exception:
            log.exception("session sweep failed")


def transport_alive(gw: Gateway, sid: str) -> bool:
    """Whether Engine.IO still has a transport for socket `sid` of this node."""
    eio_sid = gw.sio.manager.eio_sid_from_sid(sid, "/")
    socket = gw.sio.eio.sockets.get(eio_sid) if eio_sid else None
    return socket is not None and not socket.closed


class RecordedSessions:
    """actors.ports.SessionDirectory over the session records of every node and this node's
    gateway. A record is trusted when its node is in the live view (`gw.live_nodes`; None:
    a single node, only `gw.node_id` exists), except that this node's own sockets are
    checked here: one we no longer hold, or whose Engine.IO transport is gone while
    Socket.IO never reported the close (a client that vanished mid-handshake), is not live;
    such a zombie is closed as if Socket.IO had reported it.

    Records left out are removed (best effort), with one exception: in a cluster, the record
    of a node outside this node's view is only left out. A view may lag behind for a moment
    (a node that just joined and already took sockets), and a removed record would be lost
    for good, while one left out comes back with the view. The cluster removes a dead node's
    records with SessionRecords.forget_node when it reaps the node (and they expire anyway)."""

    __slots__ = ("_gw", "_records")  # one per UserActor activation, so per connected user

    def __init__(self, gw: Gateway, records: SessionRecords) -> None:
        self._gw = gw
        self._records = records

    async def sessions(self, user_id: str) -> dict[str, str]:
        recorded = await self._records.of_user(user_id)
        alone = self._gw.live_nodes is None
        live = self._live_nodes()
        found: dict[str, str] = {}
        for sid, node in recorded.items():
            if node not in live:
                if not alone:
                    continue
                # Alone, any other node id is a previous process of ours (or of a node
                # long gone): nothing can bring its sockets back.
                log.info("forgetting a session of node %s, which is gone", node,
                         extra={"user_id": user_id})
            elif node == self._gw.node_id and not self._held(sid, user_id):
                log.info("forgetting a session this node no longer holds",
                         extra={"user_id": user_id})
            else:
                found[sid] = node
                continue
            try:
                await self._records.remove(user_id, sid, node)
            except StorageError:  # left out all the same; the next read tries again
                log.warning("stale session record not removed", exc_info=True,
                            extra={"user_id": user_id})
        return found

    def _live_nodes(self) -> Collection[str]:
        live_nodes = self._gw.live_nodes
        return (self._gw.node_id,) if live_nodes is None else set(live_nodes())

    def _held(self, sid: str, user_id: str) -> bool:
        conn = self._gw.connections.get(sid)
        if conn is None or conn.user_id != user_id:
            return False
        if transport_alive(self._gw, sid):
            return True
        # A zombie: Socket.IO will never run its disconnect handler, so close it here. In a
        # task of its own: the UserActor asking us must not wait on a tell to itself.
        self._gw.connections.pop(sid, None)
        if conn.expiry is not None:
            conn.expiry.cancel()
        self._gw.spawn(_gone(self._gw, conn), name=f"zombie:{sid}")
        return False
