"""In-memory twins of the chat ports (actors/ports.py, server/chat/ports.py) for unit tests.

They keep the contracts the Postgres adapters keep (tests/integration/test_pg_chat.py runs the
same contract checks over both where it matters): the store gives each message its room's
next seq, resends by client_id return the first message (and take no seq), forward-only read
positions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from protocols.chat import Message, Room
from protocols.ids import new_id
from protocols.room_messages import RoomMember, RoomState

T0 = datetime(2020, 1, 1, tzinfo=UTC)  # before ManualClock's start


@dataclass
class MemoryRoom:
    id: str
    kind: Literal["direct", "group"]
    name: str | None
    created_at: datetime
    members: dict[str, RoomMember] = field(default_factory=dict)  # in joining order
    messages: dict[int, Message] = field(default_factory=dict)
    direct_key: str | None = None
    last_activity_at: datetime = T0


@dataclass
class ChatWorld:
    """Everything the fakes share: rooms, users, blocks."""

    rooms: dict[str, MemoryRoom] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    blocks: set[tuple[str, str]] = field(default_factory=set)  # (blocker, blocked)

    def add_room(self, room_id: str, members: list[str], kind: Literal["direct", "group"] =
                 "group", owner: str | None = None) -> MemoryRoom:
        room = MemoryRoom(id=room_id, kind=kind, name=None, created_at=T0)
        for user_id in members:
            room.members[user_id] = RoomMember(
                user_id=user_id, role="owner" if user_id == owner else "member")
            self.users.add(user_id)
        self.rooms[room_id] = room
        return room


class MemoryRoomStore:
    """RoomStore in memory. `fail_next_append` makes the next append raise (after or before
    storing, to simulate a crash around the commit); `steal_next_seq` stores a foreign
    message under the next seq first, as a second activation in a cluster would; `gate`,
    when set, holds every append until it is set (messages in flight)."""

    def __init__(self, world: ChatWorld) -> None:
        self.world = world
        self.loads = 0
        self.appends = 0
        self.fail_next_append: Literal["before", "after"] | None = None
        self.steal_next_seq = 0  # how many upcoming appends find their seq taken
        self.gate: asyncio.Event | None = None
        self._counted = asyncio.Condition()

    async def load(self, room_id: str) -> RoomState | None:
        self.loads += 1
        await asyncio.sleep(0)  # a real load suspends; let other tasks interleave
        room = self.world.rooms.get(room_id)
        if room is None:
            return None
        return RoomState(id=room.id, kind=room.kind, name=room.name,
                         created_at=room.created_at, members=list(room.members.values()),
                         last_seq=max(room.messages, default=0))

    def _store(self, room: MemoryRoom, message: Message) -> None:
        room.messages[message.seq] = message
        room.last_activity_at = message.created_at
        member = room.members.get(message.sender_id)
        if member is not None and member.last_read_seq < message.seq:
            room.members[message.sender_id] = RoomMember(
                user_id=member.user_id, role=member.role, last_read_seq=message.seq)

    async def appends_reach(self, n: int) -> None:
        """Wait until `n` appends have come in (held at the gate, or done)."""
        async with self._counted:
            await self._counted.wait_for(lambda: self.appends >= n)

    async def append(self, message: Message) -> Message:
        self.appends += 1
        async with self._counted:
            self._counted.notify_all()
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        room = self.world.rooms[message.room_id]
        if self.fail_next_append == "before":
            self.fail_next_append = None
            raise ConnectionError("database went away before the commit")
        if self.steal_next_seq:
            self.steal_next_seq -= 1
            seq = max(room.messages, default=0) + 1
            self._store(room, Message(
                id=f"stolen-{seq}", room_id=room.id, seq=seq, sender_id=message.sender_id,
                text="from another activation", client_id=f"other-{seq}",
                created_at=message.created_at))
        for stored in room.messages.values():
            if (stored.sender_id, stored.client_id) == (message.sender_id, message.client_id):
                return stored
        message = msgspec.structs.replace(message, seq=max(room.messages, default=0) + 1)
        self._store(room, message)
        if self.fail_next_append == "after":
            self.fail_next_append = None
            raise ConnectionError("connection lost after the commit")
        return message

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        room = self.world.rooms[room_id]
        return [room.messages[s] for s in sorted(room.messages) if s > after_seq][:limit]

    async def before(self, room_id: str, before_seq: int | None, limit: int) -> list[Message]:
        room = self.world.rooms[room_id]
        seqs = [s for s in sorted(room.messages) if before_seq is None or s < before_seq]
        return [room.messages[s] for s in seqs[-limit:]]

    async def set_read(self, room_id: str, user_id: str, seq: int) -> None:
        member = self.world.rooms[room_id].members.get(user_id)
        if member is not None and member.last_read_seq < seq:
            self.world.rooms[room_id].members[user_id] = RoomMember(
                user_id=user_id, role=member.role, last_read_seq=seq)


@dataclass
class RecordingBroadcaster:
    room_events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    user_events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("socket.io manager unavailable")
        self.room_events.append((room_id, event, data))

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.user_events.append((user_id, event, data))

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        pass


    def events(self, name: str) -> list[dict[str, Any]]:
        return [data for _, event, data in self.room_events if event == name]


@dataclass
class RecordingRoomSockets:
    left: list[tuple[str, str]] = field(default_factory=list)  # (room, user) evicted

    async def leave(self, room_id: str, user_id: str) -> None:
        self.left.append((room_id, user_id))


@dataclass
class FakePresence:
    online_users: set[str] = field(default_factory=set)
    lookups: int = 0

    async def online(self, user_ids: list[str]) -> set[str]:
        self.lookups += 1
        return {u for u in user_ids if u in self.online_users}


@dataclass
class RecordingNotifier:
    calls: list[tuple[list[str], Message]] = field(default_factory=list)

    async def notify_offline(self, user_ids: list[str], message: Message) -> None:
        self.calls.append((sorted(user_ids), message))


class MemoryRoomDirectory:
    """RoomDirectory in memory, over the same ChatWorld as MemoryRoomStore."""

    def __init__(self, world: ChatWorld) -> None:
        self.world = world

    async def existing_users(self, user_ids: list[str]) -> set[str]:
        return {u for u in user_ids if u in self.world.users}

    async def blocks_between(self, users: list[str], others: list[str]) -> set[frozenset[str]]:
        return {frozenset(pair) for pair in self.world.blocks
                if (pair[0] in users and pair[1] in others)
                or (pair[0] in others and pair[1] in users)}

    def _view(self, room: MemoryRoom, viewer_id: str) -> Room:
        last_seq = max(room.messages, default=0)
        return Room(id=room.id, kind=room.kind, name=room.name,
                    member_ids=list(room.members), created_at=room.created_at,
                    last_seq=last_seq, last_message=room.messages.get(last_seq),
                    unread_count=last_seq - room.members[viewer_id].last_read_seq)

    async def create_direct(self, creator_id: str, other_id: str) -> tuple[Room, bool]:
        key = ":".join(sorted((creator_id, other_id)))
        for room in self.world.rooms.values():
            if room.direct_key == key:
                return self._view(room, creator_id), False
        room = self.world.add_room(new_id(), [creator_id, other_id], kind="direct")
        room.direct_key = key
        return self._view(room, creator_id), True

    async def create_group(self, room_id: str, creator_id: str, member_ids: list[str],
                           name: str | None) -> Room:
        room = self.world.add_room(room_id, [creator_id, *member_ids], owner=creator_id)
        room.name = name
        return self._view(room, creator_id)

    async def room(self, room_id: str, viewer_id: str) -> Room | None:
        room = self.world.rooms.get(room_id)
        if room is None or viewer_id not in room.members:
            return None
        return self._view(room, viewer_id)

    async def rooms(self, viewer_id: str, *, limit: int,
                    after: tuple[datetime, str] | None) -> tuple[list[Room], Any]:
        mine = sorted((r for r in self.world.rooms.values() if viewer_id in r.members),
                      key=lambda r: (r.last_activity_at, r.id), reverse=True)
        if after is not None:
            mine = [r for r in mine if (r.last_activity_at, r.id) < after]
        page = mine[:limit]
        last = (page[-1].last_activity_at, page[-1].id) if len(mine) > limit else None
        return [self._view(r, viewer_id) for r in page], last

    async def role(self, room_id: str, user_id: str) -> Literal["owner", "member"] | None:
        room = self.world.rooms.get(room_id)
        member = room.members.get(user_id) if room else None
        return member.role if member else None

    async def add_members(self, room_id: str, user_ids: list[str], *, max_members: int) -> bool:
        room = self.world.rooms[room_id]
        if len(set(room.members) | set(user_ids)) > max_members:
            return False
        for user_id in user_ids:
            room.members.setdefault(user_id, RoomMember(user_id=user_id, role="member"))
        return True

    async def remove_members(self, room_id: str, user_ids: list[str]) -> list[str]:
        room = self.world.rooms[room_id]
        removed = [u for u in user_ids if room.members.pop(u, None) is not None]
        if room.members and not any(m.role == "owner" for m in room.members.values()):
            first = next(iter(room.members.values()))
            room.members[first.user_id] = RoomMember(user_id=first.user_id, role="owner",
                                                     last_read_seq=first.last_read_seq)
        return removed
