"""Messages to a RoomActor (actor messages, never on the wire). A RoomActor is the single
writer of its room: members, the per-room sequence, typing and read positions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from protocols.chat import Message, RoomKind


class RoomMsg(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str  # who acts; every message is checked against membership


class JoinRoom(RoomMsg, frozen=True, kw_only=True):
    """Ask -> JoinResult. since_seq replays what the user missed, in order."""

    since_seq: int | None = None


class JoinResult(msgspec.Struct, frozen=True, kw_only=True):
    last_seq: int
    missed: list[Message]


class SendMessage(RoomMsg, frozen=True, kw_only=True):
    """Ask -> Message, durable in Postgres before the reply. Idempotent per client_id."""

    client_id: str
    text: str


class SetTyping(RoomMsg, frozen=True, kw_only=True):
    """Tell. Typing expires by itself after a few seconds unless renewed."""

    active: bool


class MarkRead(RoomMsg, frozen=True, kw_only=True):
    """Tell (or ask -> None). Read positions only move forward."""

    seq: int


class MembershipChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Tell (or ask -> None), from the REST side after members were added or removed in
    Postgres: reload. `removed_user_ids` get their sockets taken out of the room's live stream
    even when the actor was not active to see them go."""

    removed_user_ids: list[str] = []


class AppendSystemMessage(msgspec.Struct, frozen=True, kw_only=True):
    """Tell (or ask -> Message): append a `kind="system"` message (e.g. a call summary) with
    the room's next seq, like any message, but without a membership check or `message`
    notifications. Idempotent per (sender_id, client_id), like SendMessage."""

    sender_id: str  # on whose behalf (e.g. the call's initiator)
    client_id: str  # e.g. "call:<call id>": a retry finds the first message
    text: str


# -- What a RoomActor loads and stores through its ports (actors/ports.py RoomStore) ----------

MemberRole = Literal["owner", "member"]


class RoomMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    role: MemberRole
    last_read_seq: int = 0


class RoomState(msgspec.Struct, frozen=True, kw_only=True):
    """A room as its actor loads it: what it is, who is in it, and the highest seq stored."""

    id: str
    kind: RoomKind
    name: str | None
    created_at: datetime
    members: list[RoomMember]
    last_seq: int
