"""ChatService (REST rules) over in-memory ports, with messages going through a real
RoomActor on an actor system with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from actors.clock import ManualClock
from actors.room import RoomActor, RoomPorts
from actors.system import ActorSystem
from protocols.chat import HistoryQuery, MembersChange, RoomCreate
from protocols.common import PageQuery
from protocols.ids import new_id
from server.auth.principal import Principal
from server.chat.service import ChatService
from server.chat.wiring import ActorRoomMessenger
from server.http.problems import Conflict, Forbidden, NotFound, ValidationFailed
from storage.memory.chat_history import MemoryChatHistory
from tests.unit.chat.fakes import (
    ChatWorld,
    FakePresence,
    MemoryRoomDirectory,
    MemoryRoomStore,
    RecordingBroadcaster,
    RecordingNotifier,
    RecordingRoomSockets,
)


@dataclass
class Chat:
    world: ChatWorld
    service: ChatService
    system: ActorSystem
    broadcaster: RecordingBroadcaster
    sockets: RecordingRoomSockets

    def user(self) -> Principal:
        user_id = new_id()
        self.world.users.add(user_id)
        return Principal(user_id=user_id, role="user", token_id=new_id(), expires_at=0)


@pytest_asyncio.fixture
async def chat() -> AsyncIterator[Chat]:
    world = ChatWorld()
    clock = ManualClock()
    store = MemoryRoomStore(world)
    broadcaster = RecordingBroadcaster()
    sockets = RecordingRoomSockets()
    system = ActorSystem(clock=clock)
    ports = RoomPorts(store=store, history=MemoryChatHistory(clock=clock.time),
                      broadcaster=broadcaster, presence=FakePresence(),
                      notifier=RecordingNotifier(), sockets=sockets)
    system.register(RoomActor, lambda key, ctx: RoomActor(key, ctx, ports))
    service = ChatService(MemoryRoomDirectory(world), store, ActorRoomMessenger(system),
                          max_members=5)
    yield Chat(world, service, system, broadcaster, sockets)
    await system.stop()


def direct(*ids: str) -> RoomCreate:
    return RoomCreate(kind="direct", member_ids=list(ids))


def group(*ids: str, name: str | None = None) -> RoomCreate:
    return RoomCreate(kind="group", member_ids=list(ids), name=name)


async def test_a_direct_room_is_created_once(chat: Chat) -> None:
    ann, bob = chat.user(), chat.user()
    room, created = await chat.service.create_room(ann, direct(bob.user_id))
    assert created and room.kind == "direct" and set(room.member_ids) == {ann.user_id,
                                                                          bob.user_id}
    again, created_again = await chat.service.create_room(bob, direct(ann.user_id.upper()))
    assert again.id == room.id and not created_again


@pytest.mark.parametrize("members", [[], ["self"], ["b", "c"]])
async def test_a_direct_room_needs_exactly_one_other_member(chat: Chat,
                                                            members: list[str]) -> None:
    ann, bob, cat = chat.user(), chat.user(), chat.user()
    names = {"self": ann.user_id, "b": bob.user_id, "c": cat.user_id}
    with pytest.raises(ValidationFailed):
        await chat.service.create_room(ann, RoomCreate(
            kind="direct", member_ids=[names[m] for m in members] or [ann.user_id]))


async def test_unknown_and_malformed_users_are_422(chat: Chat) -> None:
    ann = chat.user()
    for ids in ([new_id()], ["nope"]):
        with pytest.raises(ValidationFailed) as invalid:
            await chat.service.create_room(ann, group(*ids))
        assert invalid.value.errors and invalid.value.errors[0].field == "member_ids"


async def test_blocks_keep_people_out_of_rooms_together(chat: Chat) -> None:
    ann, bob, cat, dan = chat.user(), chat.user(), chat.user(), chat.user()
    chat.world.blocks.add((bob.user_id, ann.user_id))  # bob blocks ann
    chat.world.blocks.add((cat.user_id, dan.user_id))  # cat blocks dan
    with pytest.raises(NotFound) as hidden:
        await chat.service.create_room(ann, direct(bob.user_id))
    assert hidden.value.code == "user_not_found"
    with pytest.raises(NotFound):
        await chat.service.create_room(bob, group(ann.user_id))
    with pytest.raises(Forbidden) as forbidden:
        await chat.service.create_room(ann, group(cat.user_id, dan.user_id))
    assert forbidden.value.code == "blocked_member"


async def test_group_membership_rules(chat: Chat) -> None:
    ann, bob, cat, dan = chat.user(), chat.user(), chat.user(), chat.user()
    room, created = await chat.service.create_room(ann, group(bob.user_id, name="team"))
    assert created and room.name == "team" and room.member_ids == [ann.user_id, bob.user_id]
    with pytest.raises(Forbidden) as not_owner:
        await chat.service.add_members(bob, room.id, MembersChange(user_ids=[cat.user_id]))
    assert not_owner.value.code == "not_owner"
    with pytest.raises(NotFound):
        await chat.service.add_members(cat, room.id, MembersChange(user_ids=[cat.user_id]))
    grown = await chat.service.add_members(ann, room.id, MembersChange(
        user_ids=[cat.user_id, dan.user_id, bob.user_id]))
    assert set(grown.member_ids) == {ann.user_id, bob.user_id, cat.user_id, dan.user_id}
    with pytest.raises(ValidationFailed):  # max_members is 5 in this fixture
        await chat.service.add_members(ann, room.id, MembersChange(
            user_ids=[chat.user().user_id, chat.user().user_id]))
    with pytest.raises(Forbidden):  # bob may not remove cat...
        await chat.service.remove_members(bob, room.id, MembersChange(user_ids=[cat.user_id]))
    await chat.service.remove_members(bob, room.id, MembersChange(user_ids=[bob.user_id]))
    with pytest.raises(NotFound):  # ...but may leave, and then sees nothing
        await chat.service.room(bob, room.id)
    with pytest.raises(NotFound):  # the room reloaded its members before the reply
        await chat.service.send(bob, room.id, "still here?", "c1")
    assert chat.sockets.left == [(room.id, bob.user_id)]  # and his sockets left it
    # The owner leaves: the longest-standing member left (cat) takes over and may add.
    await chat.service.remove_members(ann, room.id, MembersChange(user_ids=[ann.user_id]))
    after = await chat.service.add_members(cat, room.id, MembersChange(user_ids=[bob.user_id]))
    assert set(after.member_ids) == {bob.user_id, cat.user_id, dan.user_id}


async def test_direct_rooms_do_not_change_members(chat: Chat) -> None:
    ann, bob, cat = chat.user(), chat.user(), chat.user()
    room, _ = await chat.service.create_room(ann, direct(bob.user_id))
    with pytest.raises(Conflict) as conflict:
        await chat.service.add_members(ann, room.id, MembersChange(user_ids=[cat.user_id]))
    assert conflict.value.code == "direct_room"


async def test_a_message_sent_over_rest_goes_through_the_room(chat: Chat) -> None:
    ann, bob, eve = chat.user(), chat.user(), chat.user()
    room, _ = await chat.service.create_room(ann, direct(bob.user_id))
    first = await chat.service.send(ann, room.id, "hello", "c1")
    assert first.seq == 1
    assert await chat.service.send(ann, room.id, "hello again?", "c1") == first
    assert (await chat.service.send(bob, room.id.upper(), "hi", "c1")).seq == 2
    assert chat.system.snapshot().live == {"RoomActor": 1}  # any case: the same actor
    assert [e["message"]["seq"] for e in chat.broadcaster.events("message:new")] == [1, 2]
    for room_id in (room.id, new_id(), "garbage"):
        with pytest.raises(NotFound):
            await chat.service.send(eve, room_id, "let me in", "c1")
    seen = await chat.service.room(ann, room.id)
    assert seen.last_seq == 2 and seen.last_message and seen.last_message.text == "hi"
    assert seen.unread_count == 1  # bob's; ann's own message counts as read


async def test_history_pages_both_ways(chat: Chat) -> None:
    ann, bob = chat.user(), chat.user()
    room, _ = await chat.service.create_room(ann, direct(bob.user_id))
    for i in range(7):
        await chat.service.send(ann, room.id, f"m{i}", f"c{i}")

    async def seqs(**query: object) -> tuple[list[int], str | None]:
        page = await chat.service.history(bob, room.id, HistoryQuery(**query))  # type: ignore[arg-type]
        return [m.seq for m in page.items], page.next_cursor

    newest, back = await seqs(limit=3)
    assert newest == [5, 6, 7] and back
    older, back = await seqs(limit=3, cursor=back)
    assert older == [2, 3, 4] and back
    assert await seqs(limit=3, cursor=back) == ([1], None)
    forward, more = await seqs(after_seq=2, limit=2)
    assert forward == [3, 4] and more
    forward, more = await seqs(limit=2, cursor=more)
    assert forward == [5, 6] and more
    assert await seqs(limit=2, cursor=more) == ([7], None)
    assert (await seqs(after_seq=1, before_seq=4, limit=10)) == ([2, 3], None)
    assert (await seqs(before_seq=3)) == ([1, 2], None)
    assert (await seqs(after_seq=7)) == ([], None)
    with pytest.raises(NotFound):
        await chat.service.history(chat.user(), room.id, HistoryQuery())


async def test_room_list_newest_activity_first_with_cursor(chat: Chat) -> None:
    ann = chat.user()
    rooms = [(await chat.service.create_room(ann, group(chat.user().user_id)))[0]
             for _ in range(3)]
    await chat.service.send(ann, rooms[0].id, "bump", "c1")
    first = await chat.service.rooms(ann, PageQuery(limit=2))
    assert first.items[0].id == rooms[0].id and first.next_cursor
    rest = await chat.service.rooms(ann, PageQuery(limit=2, cursor=first.next_cursor))
    assert {r.id for r in first.items + rest.items} == {r.id for r in rooms}
    assert rest.next_cursor is None
