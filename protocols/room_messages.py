"""Messages to a RoomActor (actor messages, never on the wire). A RoomActor is the single
writer of its room: members, the per-room sequence, typing and read positions."""

from __future__ import annotations

import msgspec

from protocols.chat import Message


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
    """Tell, from the REST side after members were added or removed in Postgres: reload."""
