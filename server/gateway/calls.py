"""Call events: decode is done; address the call's CallActor (a new id for call:invite), keep
track of the calls this socket is in (a disconnect leaves them), and ack. The CallActor
decides who may do what; this module only refuses signals that are too large. Every message
names this node (`node_id`): the call records where each participant's socket lives, so the
participants of a node that dies can be made to leave."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import msgspec

from actors.call import UNAVAILABLE, CallActor
from actors.errors import ActorError, Rejected
from protocols.call_messages import (
    AcceptCall,
    HangUp,
    RejectCall,
    RelaySignal,
    SessionGone,
    StartCall,
    StartResult,
)
from protocols.calls import MAX_SIGNAL_BYTES, CallId, CallInvite, CallInviteAck, CallSignal
from protocols.ids import new_id
from protocols.socket import TOO_LARGE
from server.gateway import acks
from server.gateway.connections import Connection, Gateway

log = logging.getLogger("hubbub.gateway")
ASK_TIMEOUT = 5.0
_encoder = msgspec.json.Encoder()


async def invite(gw: Gateway, conn: Connection, event: CallInvite) -> dict[str, Any]:
    call_id = new_id()
    conn.calls.add(call_id)  # before the ask: a disconnect meanwhile still reaches the call
    with _untracked_if_refused(conn, call_id, added=True):
        result: StartResult = await gw.system.ref(CallActor, call_id).ask(StartCall(
            user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id, media=event.media,
            room_id=event.room_id.lower() if event.room_id else None,
            user_ids=[u.lower() for u in event.user_ids] if event.user_ids is not None
            else None,
        ), timeout=ASK_TIMEOUT)
    return msgspec.to_builtins(CallInviteAck(call_id=result.call_id, busy=result.busy))


async def accept(gw: Gateway, conn: Connection, event: CallId) -> dict[str, Any]:
    call_id = event.call_id.lower()
    # Tracked before the ask: should the socket close while the accept is in flight, the
    # actor still hears of it (it ignores sessions that are not in the call).
    added = call_id not in conn.calls
    conn.calls.add(call_id)
    with _untracked_if_refused(conn, call_id, added):
        await gw.system.ref(CallActor, call_id).ask(
            AcceptCall(user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id),
            timeout=ASK_TIMEOUT)
    return acks.ok()


@contextlib.contextmanager
def _untracked_if_refused(conn: Connection, call_id: str, added: bool) -> Iterator[None]:
    """A refused invite or accept joined nothing: forget the call id it tracked, so that
    refusals cost this socket no memory and its disconnect no message per refusal. Kept on
    a timeout or `unavailable` (retryable): the call may have taken the socket in."""
    try:
        yield
    except Rejected as refusal:
        if added and refusal.code != UNAVAILABLE:
            conn.calls.discard(call_id)
        raise


async def reject(gw: Gateway, conn: Connection, event: CallId) -> dict[str, Any]:
    await gw.system.ref(CallActor, event.call_id.lower()).ask(
        RejectCall(user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id),
        timeout=ASK_TIMEOUT)
    return acks.ok()


async def hang_up(gw: Gateway, conn: Connection, event: CallId) -> dict[str, Any]:
    call_id = event.call_id.lower()
    await gw.system.ref(CallActor, call_id).ask(
        HangUp(user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id),
        timeout=ASK_TIMEOUT)
    conn.calls.discard(call_id)
    return acks.ok()


async def signal(gw: Gateway, conn: Connection, event: CallSignal) -> dict[str, Any]:
    if len(_encoder.encode(event.payload)) > MAX_SIGNAL_BYTES:
        return acks.error(TOO_LARGE, f"a signal payload is at most {MAX_SIGNAL_BYTES} bytes")
    # Asked, not told: a refused signal must say so, and one sender's signals stay in order.
    await gw.system.ref(CallActor, event.call_id.lower()).ask(RelaySignal(
        user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id,
        to_user_id=event.to_user_id.lower(), kind=event.kind, payload=event.payload),
        timeout=ASK_TIMEOUT)
    return acks.ok()


async def session_gone(gw: Gateway, conn: Connection) -> None:
    """The socket closed: each call it invited or accepted hears of it (and the participant
    leaves; the caller before an answer cancels)."""
    for call_id in conn.calls:
        try:
            await gw.system.ref(CallActor, call_id).tell(
                SessionGone(user_id=conn.user_id, session_id=conn.sid, node_id=gw.node_id))
        except ActorError:
            log.info("call %s: disconnect not delivered: actor system stopped", call_id)
    conn.calls.clear()
