"""Chat events: decode is done; address the RoomActor, keep this socket's Socket.IO rooms
in step, and ack. The RoomActor checks membership on every message."""

from __future__ import annotations

from typing import Any

from actors.room import RoomActor
from protocols.room_messages import JoinResult, JoinRoom, MarkRead, SendMessage, SetTyping
from protocols.socket import (
    NOT_JOINED,
    JoinAck,
    MessageReadEvent,
    MessageSendEvent,
    RoomJoin,
    RoomLeave,
    SendAck,
    TypingEvent,
)
from server.gateway import acks
from server.gateway.broadcaster import room_of
from server.gateway.connections import Connection, Gateway

ASK_TIMEOUT = 5.0


async def join(gw: Gateway, conn: Connection, event: RoomJoin) -> dict[str, Any]:
    room_id = event.room_id.lower()
    channels = gw.room_channels if room_id not in conn.rooms else None
    if channels is not None:
        # Before the actor answers: every message after its last_seq then reaches this node.
        await channels.hold(room_id)
    try:
        result: JoinResult = await gw.system.ref(RoomActor, room_id).ask(
            JoinRoom(user_id=conn.user_id, since_seq=event.since_seq), timeout=ASK_TIMEOUT)
    except BaseException:
        if channels is not None:
            await channels.release(room_id)
        raise
    # Entered only once the actor said yes, so a non-member never receives a message. The
    # actor replied before handling anything queued behind the join, and we resume within
    # the same loop turns, long before a queued send has gone through Postgres.
    await gw.sio.enter_room(conn.sid, room_of(room_id))
    conn.rooms.add(room_id)
    return acks.ok(JoinAck(last_seq=result.last_seq, missed=result.missed))


async def leave(gw: Gateway, conn: Connection, event: RoomLeave) -> dict[str, Any]:
    room_id = event.room_id.lower()
    await gw.sio.leave_room(conn.sid, room_of(room_id))
    if room_id in conn.rooms:
        conn.rooms.discard(room_id)
        if gw.room_channels is not None:
            await gw.room_channels.release(room_id)
    return acks.ok()


async def socket_gone(gw: Gateway, conn: Connection) -> None:
    """The socket closed: this node holds its rooms' channels no more for it."""
    if gw.room_channels is not None:
        for room_id in conn.rooms:
            await gw.room_channels.release(room_id)
    conn.rooms.clear()


async def send(gw: Gateway, conn: Connection, event: MessageSendEvent) -> dict[str, Any]:
    message = await gw.system.ref(RoomActor, event.room_id.lower()).ask(
        SendMessage(user_id=conn.user_id, client_id=event.client_id, text=event.text),
        timeout=ASK_TIMEOUT)
    return acks.ok(SendAck(message=message))


async def typing(gw: Gateway, conn: Connection, event: TypingEvent) -> dict[str, Any]:
    room_id = event.room_id.lower()
    if room_id not in conn.rooms:
        return acks.error(NOT_JOINED, "join the room (room:join) before typing in it")
    # A tell: typing is ephemeral and frequent; a full mailbox is answered `busy`.
    gw.system.ref(RoomActor, room_id).tell_nowait(
        SetTyping(user_id=conn.user_id, active=event.active))
    return acks.ok()


async def read(gw: Gateway, conn: Connection, event: MessageReadEvent) -> dict[str, Any]:
    # Asked rather than told so a non-member learns it is refused.
    await gw.system.ref(RoomActor, event.room_id.lower()).ask(
        MarkRead(user_id=conn.user_id, seq=event.seq), timeout=ASK_TIMEOUT)
    return acks.ok()
