"""Chat shapes (contract): rooms and messages over REST and Socket.IO."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound

MAX_MESSAGE_CHARS = 4000
MAX_GROUP_MEMBERS = 256

RoomKind = Literal["direct", "group"]
# Nothing Postgres cannot store (protocols.fields): a NUL once crashed the room on every try.
MessageText = fields.text(min_length=1, max_length=MAX_MESSAGE_CHARS)
RoomName = fields.line(min_length=1, max_length=100)
# Chosen by the client, unique per sender and room; a resend with the same client_id returns
# the first message instead of creating another.
ClientId = fields.visible_ascii(max_length=64)
MemberIds = Annotated[list[fields.EntityId],
                      msgspec.Meta(min_length=1, max_length=MAX_GROUP_MEMBERS)]


class Message(Outbound):
    id: str
    room_id: str
    seq: int  # 1, 2, 3, ... per room: no gaps, no duplicates
    sender_id: str
    text: str
    client_id: str
    created_at: datetime
    kind: Literal["text", "system"] = "text"  # system: e.g. a call summary


class Room(Outbound):
    id: str
    kind: RoomKind
    name: str | None
    member_ids: list[str]
    created_at: datetime
    last_seq: int = 0
    last_message: Message | None = None
    unread_count: int = 0


class RoomCreate(Inbound):
    kind: RoomKind
    member_ids: MemberIds
    name: RoomName | None = None


class MembersChange(Inbound):
    user_ids: MemberIds


class MessageSend(Inbound):
    text: MessageText
    client_id: ClientId


class HistoryQuery(Inbound):
    """`GET /v1/rooms/{id}/messages`. Items always come in ascending seq order.

    after_seq: the messages just after it (catching up). before_seq: the messages just before
    it (scrolling back). Neither: the newest. Both: the window between them, from after_seq.
    `cursor` (from a previous page's next_cursor) continues in the same direction.
    """

    before_seq: fields.PositiveSeq | None = None
    after_seq: fields.Seq | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    cursor: str | None = None
