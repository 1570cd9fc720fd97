"""Call shapes (contract): Socket.IO call events in both directions, `GET /v1/calls/{id}` and
`GET /v1/calls/ice-servers`.

Signaling model: Hubbub relays SDP offers/answers and ICE candidates opaquely (`payload` is
whatever the client's WebRTC stack produced, at most MAX_SIGNAL_BYTES of JSON) and only
between two participants who have both joined the call (the caller from the start, a callee
once it accepted): an offer is sent after `call:accepted`, never to a ringing callee. Each
participant is in the call from exactly one socket (the device that invited or accepted);
signals to them go to that socket only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound

# Mesh calls: every participant holds a peer connection to every other, so keep it small.
MAX_CALL_PARTICIPANTS = 8
# The JSON encoding of one call:signal payload (an SDP with its candidates is a few KiB).
MAX_SIGNAL_BYTES = 16 * 1024

CallMedia = Literal["audio", "video"]
SignalKind = Literal["offer", "answer", "ice"]
CallState = Literal["invited", "ringing", "active", "ended"]
# A participant's state; after the call ended it is their outcome: `left` (was in the call),
# `missed` (rang, never answered), `rejected`, `cancelled` (the caller gave up first), `busy`
# (in another call when invited: never rung).
ParticipantState = Literal["ringing", "joined", "left", "missed", "rejected", "cancelled",
                           "busy"]
# Why a call ended: `hangup` (fewer than two participants remain), `cancelled` (the caller
# hung up, or disconnected, before anyone answered), `rejected` (every callee declined),
# `unanswered` (nobody answered within CALL_RING_TIMEOUT).
EndReason = Literal["hangup", "cancelled", "rejected", "unanswered"]
# call:ended reasons seen by one socket: the above, plus `answered_elsewhere` (another device
# of the same user accepted) and `declined_elsewhere` (another device of the user rejected).
EndedReason = Literal["hangup", "cancelled", "rejected", "unanswered", "answered_elsewhere",
                      "declined_elsewhere"]

# A canonical UUID in any case; the gateway lower-cases it.
CallEntityId = fields.EntityId


# -- client -> server (Socket.IO) ---------------------------------------------------------------

class CallInvite(Inbound):
    """`call:invite` -> CallInviteAck. Exactly one of `room_id` (ring every other member of a
    room you are in: a group call) and `user_ids` (ring these users: one id is a 1:1 call).
    A 1:1 callee in another call refuses the invite with code `busy`; in a group call busy
    members are listed in the ack's `busy` and not rung."""

    media: CallMedia
    room_id: CallEntityId | None = None
    user_ids: Annotated[list[CallEntityId],
                        msgspec.Meta(min_length=1, max_length=MAX_CALL_PARTICIPANTS - 1)] | None \
        = None


class CallId(Inbound):
    """`call:accept`, `call:reject`, `call:hangup` -> {ok}."""

    call_id: CallEntityId


class CallSignal(Inbound):
    """`call:signal` -> {ok}: relay an SDP offer/answer or an ICE candidate to another joined
    participant. `payload` at most MAX_SIGNAL_BYTES as JSON (else `too_large`)."""

    call_id: CallEntityId
    to_user_id: CallEntityId
    kind: SignalKind
    payload: dict[str, Any]


class CallInviteAck(Outbound, kw_only=True):
    ok: Literal[True] = True
    call_id: str
    busy: list[str] = []  # group calls: members in another call, not rung


# -- server -> client (Socket.IO) ---------------------------------------------------------------

class CallIncoming(Outbound):
    """`call:incoming`, to every socket of each callee."""

    call_id: str
    from_user_id: str
    media: CallMedia
    room_id: str | None = None


class CallAnswered(Outbound):
    """`call:accepted` / `call:rejected`, to the participants' sockets: `user_id` accepted
    (joined) or declined."""

    call_id: str
    user_id: str


class CallLeft(Outbound):
    """`call:left`, to the joined participants of a group call that goes on without
    `user_id`."""

    call_id: str
    user_id: str


class CallEnded(Outbound):
    """`call:ended`: the call is over for this socket (see EndedReason)."""

    call_id: str
    reason: EndedReason


class CallSignalled(Outbound):
    """`call:signal` (server -> client), to the addressed participant's call socket only."""

    call_id: str
    from_user_id: str
    kind: SignalKind
    payload: dict[str, Any]


# -- REST -------------------------------------------------------------------------------------

class CallParticipantView(Outbound):
    user_id: str
    state: ParticipantState
    joined_at: datetime | None
    left_at: datetime | None
    duration: float | None = None  # seconds in the call (left_at - joined_at), when both set


class CallView(Outbound):
    """`GET /v1/calls/{id}`, for the call's participants (everyone invited) only."""

    id: str
    room_id: str | None
    media: CallMedia
    state: CallState
    initiator_id: str
    participants: list[CallParticipantView]
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: EndReason | None
    duration: float | None = None  # seconds from answered_at to ended_at


class IceServer(Outbound, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServers(Outbound):
    """`GET /v1/calls/ice-servers`: STUN servers, and TURN servers with credentials of the
    TURN REST scheme (username `<expiry unix>:<user id>`, credential
    base64(HMAC-SHA1(TURN_SECRET, username))) valid for `ttl` seconds."""

    ice_servers: list[IceServer]
    ttl: int
