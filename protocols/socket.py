"""Socket.IO wire shapes (contract, namespace `/`): client -> server events, their acks, and
server -> client events.

The Socket.IO event name plays the role of a message tag: `CLIENT_EVENTS` is the allowlist
of what a client may send, each name bound to exactly one frozen Struct that refuses unknown
fields. `decode()` turns one event's payload (already parsed from JSON by Socket.IO) into its
Struct or raises: the gateway answers such failures with `{ok: false, error: {code:
"invalid"}}` and never drops the connection.

Every client event is acked with `{ok: true, ...}` (an `AckOk` subclass) or `{ok: false,
error: {code, message}}` (`AckError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound
from protocols.calls import (
    CallAnswered,
    CallEnded,
    CallId,
    CallIncoming,
    CallInvite,
    CallLeft,
    CallSignal,
    CallSignalled,
)
from protocols.chat import ClientId, Message, MessageText
from protocols.feed import FeedNew
from protocols.notifications import NotificationPushed
from protocols.presence import ChosenStatus, EffectivePresence, PresenceStatus
from protocols.validation import explain, summary

MAX_PRESENCE_IDS = 200

# A canonical UUID in any case (the gateway lower-cases it before addressing an actor).
EntityId = fields.EntityId
AccessToken = fields.text(min_length=1, max_length=4096)


# -- client -> server -------------------------------------------------------------------------

class ClientEvent(Inbound):
    """Base of every client -> server payload: frozen, unknown fields refused."""


class RoomJoin(ClientEvent):
    """`room:join` -> JoinAck. Joins the room's live stream; since_seq replays what was
    missed after it (in order), otherwise `missed` is empty."""

    room_id: EntityId
    since_seq: fields.Seq | None = None


class RoomLeave(ClientEvent):
    """`room:leave` -> AckOk. Stops this socket's live stream of the room (membership is
    untouched: that is `DELETE /v1/rooms/{id}/members`)."""

    room_id: EntityId


class MessageSendEvent(ClientEvent):
    """`message:send` -> SendAck. Idempotent per (room, sender, client_id)."""

    room_id: EntityId
    client_id: ClientId
    text: MessageText


class TypingEvent(ClientEvent):
    """`typing` -> AckOk. Only on a room this socket joined; expires by itself unless
    renewed."""

    room_id: EntityId
    active: bool


class MessageReadEvent(ClientEvent):
    """`message:read` -> AckOk. The reader's position only moves forward."""

    room_id: EntityId
    seq: fields.PositiveSeq


class PresenceSet(ClientEvent):
    """`presence:set` -> PresenceSetAck."""

    status: ChosenStatus


class PresenceSubscribe(ClientEvent):
    """`presence:subscribe` -> PresenceAck. Users the caller may not see (a block either
    way, or no such user) are left out silently; the socket then receives `presence` events
    of the users listed in the ack."""

    user_ids: Annotated[list[EntityId], msgspec.Meta(max_length=MAX_PRESENCE_IDS)]


class AuthRefresh(ClientEvent):
    """`auth:refresh` -> RefreshAck. A fresh access token for the same user extends the
    connection's life to that token's expiry."""

    token: AccessToken


CLIENT_EVENTS: Mapping[str, type[Inbound]] = MappingProxyType({
    "room:join": RoomJoin,
    "room:leave": RoomLeave,
    "message:send": MessageSendEvent,
    "typing": TypingEvent,
    "message:read": MessageReadEvent,
    "presence:set": PresenceSet,
    "presence:subscribe": PresenceSubscribe,
    "auth:refresh": AuthRefresh,
    # Calls (protocols/calls.py): plain Inbound Structs, decoded like the others.
    "call:invite": CallInvite,
    "call:accept": CallId,
    "call:reject": CallId,
    "call:hangup": CallId,
    "call:signal": CallSignal,
})

# Built once: strict conversion (no "1" -> 1 coercion) of a parsed JSON payload.
_DECODERS: Mapping[str, Callable[[Any], Inbound]] = MappingProxyType({
    name: partial(msgspec.convert, type=struct, strict=True)
    for name, struct in CLIENT_EVENTS.items()
})


class UnknownEvent(ValueError):
    """The event name is not one a client may send."""


def decode(event: object, args: tuple[Any, ...]) -> Inbound:
    """The Struct for one client event: `args` are the payload arguments Socket.IO passed.

    Raises UnknownEvent for a name not in CLIENT_EVENTS, msgspec.ValidationError for a
    payload that is missing, not an object, has extra arguments, unknown fields, wrong types,
    values out of range or text no store can keep (NUL, unpaired surrogates: anywhere in the
    payload, even in a field relayed as is, such as call:signal's `payload`); its message
    names every invalid field ("text: must not be empty; seq: is required").
    """
    decoder = _DECODERS.get(event) if isinstance(event, str) else None
    if decoder is None:
        raise UnknownEvent(f"unknown event {event!r}"[:120])
    if len(args) != 1:
        raise msgspec.ValidationError(f"expected one payload object, got {len(args)} arguments")
    # Python's json (Socket.IO's parser) lets `\ud800` escapes through; no store keeps them.
    if (where := fields.unpaired_surrogate_at(args[0])) is not None:
        raise msgspec.ValidationError(f"{where}: {fields.SURROGATE_MESSAGE}")
    try:
        return decoder(args[0])
    except msgspec.ValidationError as exc:
        errors = explain(args[0], CLIENT_EVENTS[event], strict=True)
        raise msgspec.ValidationError(summary(errors) if errors else str(exc)) from None


# -- acks -------------------------------------------------------------------------------------

# The gateway's own error codes; actors add theirs (e.g. "not_member") through Rejected.code.
INVALID = "invalid"  # the payload did not decode (or the event is unknown)
TOO_LARGE = "too_large"  # the payload exceeds the per-event size limit
RATE_LIMITED = "rate_limited"  # this connection sends too fast; see retry_after
UNAUTHORIZED = "unauthorized"  # auth:refresh with a bad or expired token
FORBIDDEN = "forbidden"  # auth:refresh with another user's token
NOT_JOINED = "not_joined"  # typing on a room this socket has not joined
TOO_MANY = "too_many"  # too many presence subscriptions on this connection
TIMEOUT = "timeout"  # the actor did not answer in time; the action may still happen
BUSY = "busy"  # the actor's mailbox is full; retry later
UNAVAILABLE = "unavailable"  # the server is shutting down
INTERNAL = "internal"  # a bug: logged on the server


class ErrorBody(Outbound, kw_only=True, omit_defaults=True):
    code: str
    message: str
    retry_after: float | None = None  # seconds; set with rate_limited


class AckError(Outbound, kw_only=True):
    ok: Literal[False] = False
    error: ErrorBody


class AckOk(Outbound, kw_only=True):
    ok: Literal[True] = True


class JoinAck(AckOk, kw_only=True):
    last_seq: int
    missed: list[Message]


class SendAck(AckOk, kw_only=True):
    message: Message


class PresenceEvent(Outbound):
    """`presence` (server -> client), and one item of PresenceAck.presence."""

    user_id: str
    status: PresenceStatus
    last_seen_at: datetime | None  # set when offline: when the user was last connected


def presence_event(user_id: str, seen: EffectivePresence) -> PresenceEvent:
    """The wire shape of a user's effective presence (last_seen_at only when offline)."""
    last_seen = None
    if seen.status == "offline" and seen.last_seen_at is not None:
        last_seen = datetime.fromtimestamp(seen.last_seen_at, UTC)
    return PresenceEvent(user_id=user_id, status=seen.status, last_seen_at=last_seen)


class PresenceAck(AckOk, kw_only=True):
    presence: list[PresenceEvent]


class PresenceSetAck(AckOk, kw_only=True):
    presence: PresenceEvent


class RefreshAck(AckOk, kw_only=True):
    expires_at: datetime  # when this connection is closed unless refreshed again


# -- server -> client -------------------------------------------------------------------------

class MessageNew(Outbound):
    """`message:new`, to the Socket.IO room f"room:{room_id}"."""

    message: Message


class TypingNotice(Outbound):
    """`typing`, to f"room:{room_id}"."""

    room_id: str
    user_id: str
    active: bool


class ReadNotice(Outbound):
    """`message:read`, to f"room:{room_id}"."""

    room_id: str
    user_id: str
    seq: int


# `notification` and `feed:new` go to f"user:{user_id}" (every socket of the user);
# `presence` goes to f"presence:{user_id}" (the sockets that subscribed to that user).
SERVER_EVENTS: Mapping[str, type[Outbound]] = MappingProxyType({
    "message:new": MessageNew,
    "typing": TypingNotice,
    "message:read": ReadNotice,
    "presence": PresenceEvent,
    "notification": NotificationPushed,
    "feed:new": FeedNew,
    # Calls (protocols/calls.py): to the sockets of the call's users, see actors/call.py.
    "call:incoming": CallIncoming,
    "call:accepted": CallAnswered,
    "call:rejected": CallAnswered,
    "call:left": CallLeft,
    "call:ended": CallEnded,
    "call:signal": CallSignalled,
})


def to_wire(value: msgspec.Struct) -> Any:
    """A Struct as the plain JSON-ready objects Socket.IO sends (datetimes as RFC 3339)."""
    return msgspec.to_builtins(value)
