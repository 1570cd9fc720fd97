"""Messages to a CallActor (actor messages, never on the wire), and the call record it keeps
through its CallStore port. A CallActor (key: the call id) is the single writer of one call:
its state, its participants and which socket (device) each participant is in the call from.

Every message names the acting user and the socket it came from (`session_id`, held on node
`node_id`): a user may be connected from several devices, and only one of them is in the call.

In a cluster a CallActor may briefly run twice (old and new owner during a membership view
change). Call records are therefore versioned: a save names the version it was derived from and
fails with `CallConflict` when another activation saved first (see actors/ports.py CallStore).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from protocols.calls import CallMedia, CallState, EndReason, ParticipantState, SignalKind


class CallMsg(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    session_id: str  # the Socket.IO sid the action came from: the device
    node_id: str = ""  # the node holding that socket ("" when unknown: single node, tests)


class StartCall(CallMsg, frozen=True, kw_only=True):
    """Ask -> StartResult. The call is recorded (state invited, then ringing) before the
    reply. Exactly one of room_id / user_ids. Refusals (Rejected.code): `invalid`,
    `not_member` (room), `user_not_found`, `busy` (the caller, or a 1:1 callee, is in another
    call), `call_exists` (this call id is taken by another call). Idempotent: asked again by
    the same user from the same socket once the call exists, it answers the same result."""

    media: CallMedia
    room_id: str | None = None
    user_ids: list[str] | None = None


class StartResult(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    busy: list[str] = []


class AcceptCall(CallMsg, frozen=True, kw_only=True):
    """Ask -> None. Join the call from this device: an invitee who is ringing (or whose ring
    timed out while the call goes on), or any member of a group call's room while it is
    active. The first device of a user wins; the others get call:ended answered_elsewhere and
    a later accept from them is refused `answered_elsewhere`. Also: `busy`, `call_full`,
    `call_ended`, `not_participant`."""


class RejectCall(CallMsg, frozen=True, kw_only=True):
    """Ask -> None. Decline while ringing (`not_ringing` otherwise)."""


class HangUp(CallMsg, frozen=True, kw_only=True):
    """Ask -> None. Leave the call (a ringing invitee: decline; the caller before anyone
    answered: cancel)."""


class RelaySignal(CallMsg, frozen=True, kw_only=True):
    """Ask -> None. Deliver to `to_user_id`'s call socket, when both the sender (from its call
    socket) and the recipient have joined; `not_participant` otherwise, and nothing is sent."""

    to_user_id: str
    kind: SignalKind
    payload: dict[str, Any]


class SessionGone(CallMsg, frozen=True, kw_only=True):
    """Tell, from the gateway when a socket that invited or accepted this call disconnects:
    that participant leaves the call (the caller before an answer: the call is cancelled)."""


# -- What a CallActor stores and loads (actors/ports.py CallStore) ----------------------------

class CallParticipant(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    state: ParticipantState
    device_id: str | None = None  # the socket the participant joined from
    device_node: str | None = None  # the node holding device_id (None: unknown)
    joined_at: datetime | None = None
    left_at: datetime | None = None


class CallRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    room_id: str | None  # group calls, and 1:1 calls (the two users' direct room)
    kind: str  # "direct" (one callee) or "group"
    media: CallMedia
    state: CallState
    initiator_id: str
    participants: list[CallParticipant]
    created_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    # The stored version this record was loaded as or last saved at; 0: never stored. A save
    # succeeds only from the current version (CallStore.save), which fences stale activations.
    version: int = 0


class UserBusy(Exception):
    """CallStore.save: `user_id` would be joined in two live calls at once."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} is in another call")
        self.user_id = user_id


class CallConflict(Exception):
    """CallStore.save: another activation of this call saved first (the record's version is no
    longer the stored one, or an insert found the id already stored). Nothing was written; the
    saver's state is stale and must be reloaded."""

    def __init__(self, call_id: str) -> None:
        super().__init__(f"call {call_id} was saved by another activation")
        self.call_id = call_id
