"""The port the chat REST service needs besides the RoomActor's RoomStore: rooms and their
members as the REST side creates, lists and changes them.

The Postgres adapter is storage/postgres/chat_rooms.py; tests/unit/chat/fakes.py holds the
in-memory twin. Ids passed in are canonical lowercase UUID strings; a `Room` returned is as
`viewer_id` sees it (last_message, and unread_count from the viewer's read position).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from protocols.chat import Room
from protocols.room_messages import MemberRole

# Where a newest-activity-first page of rooms resumes: (last activity, room id) of the last.
RoomPageKey = tuple[datetime, str]


class RoomDirectory(Protocol):
    async def existing_users(self, user_ids: list[str]) -> set[str]:
        """The subset of user_ids that are accounts."""
        ...

    async def blocks_between(self, users: list[str], others: list[str]) -> set[frozenset[str]]:
        """Every pair {a, b}, a in users and b in others, where a blocks b or b blocks a."""
        ...

    async def create_direct(self, creator_id: str, other_id: str) -> tuple[Room, bool]:
        """The direct room of the two users, as the creator sees it, and True when this call
        created it. At most one direct room exists per pair, even under concurrent calls."""
        ...

    async def create_group(self, room_id: str, creator_id: str, member_ids: list[str],
                           name: str | None) -> Room:
        """A new group room: the creator is its owner, member_ids (without the creator)
        plain members. One transaction."""
        ...

    async def room(self, room_id: str, viewer_id: str) -> Room | None:
        """The room as the viewer sees it; None when there is no such room or the viewer is
        not a member."""
        ...

    async def rooms(self, viewer_id: str, *, limit: int,
                    after: RoomPageKey | None) -> tuple[list[Room], RoomPageKey | None]:
        """The viewer's rooms, most recent activity (last message, or creation) first, ties by
        room id descending, starting strictly after `after`. Returns up to `limit` rooms and
        the key to resume from, None when this page is the last."""
        ...

    async def role(self, room_id: str, user_id: str) -> MemberRole | None:
        """The user's role in the room; None when not a member (or no such room)."""
        ...

    async def add_members(self, room_id: str, user_ids: list[str], *, max_members: int) -> bool:
        """Add user_ids as plain members (those already in stay as they are). Atomically
        refuses (False, nothing written) when the room would then have more than
        max_members members. True otherwise."""
        ...

    async def remove_members(self, room_id: str, user_ids: list[str]) -> list[str]:
        """Remove user_ids from the room; returns those that were members. When the owner
        leaves and members remain, the longest-standing member becomes owner (same
        transaction)."""
        ...

