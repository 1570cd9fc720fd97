"""Presence events: `presence:set` goes to the caller's UserActor; `presence:subscribe`
filters the ids by visibility (no block either way), puts this socket in the watchers' room
of each visible user and answers their current presence from the store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.user import UserActor
from protocols.presence import effective
from protocols.socket import (
    TOO_MANY,
    PresenceAck,
    PresenceEvent,
    PresenceSet,
    PresenceSetAck,
    PresenceSubscribe,
    presence_event,
)
from protocols.user_messages import SetPresence
from server.gateway import acks
from server.gateway.broadcaster import watchers_of
from server.gateway.connections import Connection, Gateway

ASK_TIMEOUT = 5.0
MAX_WATCHED = 1000  # presence subscriptions per connection


async def set_status(gw: Gateway, conn: Connection, event: PresenceSet) -> dict[str, Any]:
    presence: PresenceEvent = await gw.system.ref(UserActor, conn.user_id).ask(
        SetPresence(status=event.status), timeout=ASK_TIMEOUT)
    return acks.ok(PresenceSetAck(presence=presence))


async def subscribe(gw: Gateway, conn: Connection, event: PresenceSubscribe) -> dict[str, Any]:
    assert gw.visibility is not None and gw.presence is not None
    wanted = list(dict.fromkeys(uid.lower() for uid in event.user_ids))
    if len(conn.watching.union(wanted)) > MAX_WATCHED:
        return acks.error(TOO_MANY, f"at most {MAX_WATCHED} presence subscriptions per "
                                    "connection")
    visible = await gw.visibility.visible_to(conn.user_id, wanted) if wanted else set()
    shown = [uid for uid in wanted if uid in visible]
    await _hold(gw, [uid for uid in shown if uid not in conn.watching])
    # Enter the rooms before reading, so a change saved after the read is still pushed.
    for uid in shown:
        await gw.sio.enter_room(conn.sid, watchers_of(uid))
        conn.watching.add(uid)
    records = await gw.presence.get_many(shown) if shown else {}
    now = time.time()
    items = [presence_event(uid, effective(records.get(uid), now)) for uid in shown]
    return acks.ok(PresenceAck(presence=items))


async def _hold(gw: Gateway, uids: list[str]) -> None:
    """This node receives the watched users' presence from every node before the socket is
    told their presence (the room channels: broadcaster.channel_key). All or nothing: raises
    StorageError (answered `unavailable`) when Redis cannot confirm them."""
    channels = gw.room_channels
    if channels is None or not uids:
        return
    held = await asyncio.gather(*(channels.hold(watchers_of(uid)) for uid in uids),
                                return_exceptions=True)
    failed = next((outcome for outcome in held if isinstance(outcome, BaseException)), None)
    if failed is not None:
        for uid, outcome in zip(uids, held, strict=True):
            if not isinstance(outcome, BaseException):
                await channels.release(watchers_of(uid))
        raise failed


async def socket_gone(gw: Gateway, conn: Connection) -> None:
    """The socket closed: this node holds its watched users' channels no more for it."""
    watched = conn.take_watching()
    if gw.room_channels is not None:
        for uid in watched:
            await gw.room_channels.release(watchers_of(uid))
