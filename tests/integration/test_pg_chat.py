"""The chat stores against a real Postgres: RoomStore (the RoomActor's system of record),
RoomDirectory (REST rooms and members) and the `message` notifier.

The tests taking `backend` are RoomStore's contract: they also run over the in-memory fake of
tests/unit/chat/fakes.py, so the fake the RoomActor unit tests trust cannot drift.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from actors.ports import RoomStore
from protocols.chat import Message
from protocols.ids import new_id
from storage.postgres.chat import PostgresMessageNotifier, PostgresRoomStore
from storage.postgres.chat_rooms import PostgresRoomDirectory
from tests.unit.chat.fakes import ChatWorld, MemoryRoomStore

pytestmark = pytest.mark.integration



async def add_user(pool: asyncpg.Pool, prefix: str = "c") -> str:
    user_id = new_id()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO users (id, username, email, password_hash) VALUES ($1, $2, $3, 'x')",
        user_id, name, f"{name}@example.test")
    return user_id


async def add_users(pool: asyncpg.Pool, n: int) -> list[str]:
    return [await add_user(pool) for _ in range(n)]


def draft(room_id: str, seq: int, sender: str, client_id: str | None = None,
          text: str = "") -> Message:
    return Message(id=new_id(), room_id=room_id, seq=seq, sender_id=sender,
                   text=text or f"message {seq}", client_id=client_id or f"c{seq}",
                   created_at=datetime.now(UTC) + timedelta(milliseconds=seq))


# -- RoomStore contract: Postgres and the in-memory fake ----------------------------------------


@dataclass
class Backend:
    store: RoomStore
    make_room: Callable[[list[str]], Awaitable[str]]
    new_users: Callable[[int], Awaitable[list[str]]]


@pytest_asyncio.fixture(params=["postgres", "memory"])
async def backend(request: pytest.FixtureRequest,
                  db_pool: asyncpg.Pool) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        directory = PostgresRoomDirectory(db_pool)

        async def pg_room(members: list[str]) -> str:
            room = await directory.create_group(new_id(), members[0], members[1:], None)
            return room.id

        yield Backend(PostgresRoomStore(db_pool), pg_room, lambda n: add_users(db_pool, n))
    else:
        world = ChatWorld()

        async def memory_room(members: list[str]) -> str:
            return world.add_room(new_id(), members, owner=members[0]).id

        async def memory_users(n: int) -> list[str]:
            return [new_id() for _ in range(n)]

        yield Backend(MemoryRoomStore(world), memory_room, memory_users)


async def test_load_a_room_with_members_and_last_seq(backend: Backend) -> None:
    ann, bob = await backend.new_users(2)
    room_id = await backend.make_room([ann, bob])
    state = await backend.store.load(room_id)
    assert state is not None and state.id == room_id and state.kind == "group"
    assert state.last_seq == 0
    assert {(m.user_id, m.role, m.last_read_seq) for m in state.members} == {
        (ann, "owner", 0), (bob, "member", 0)}
    assert await backend.store.load(new_id()) is None


async def test_append_stores_moves_last_seq_and_the_senders_read_position(
        backend: Backend) -> None:
    ann, bob = await backend.new_users(2)
    room_id = await backend.make_room([ann, bob])
    first = draft(room_id, 1, ann, text="héllo ✓")
    assert await backend.store.append(first) == first
    assert await backend.store.append(draft(room_id, 2, bob)) is not None
    state = await backend.store.load(room_id)
    assert state is not None and state.last_seq == 2
    assert {m.user_id: m.last_read_seq for m in state.members} == {ann: 1, bob: 2}
    assert await backend.store.after(room_id, 0, 10) == [first, *await backend.store.after(
        room_id, 1, 10)]


async def test_a_resend_returns_the_first_message_and_writes_nothing(backend: Backend) -> None:
    ann = (await backend.new_users(1))[0]
    room_id = await backend.make_room([ann])
    first = await backend.store.append(draft(room_id, 1, ann, "same"))
    resend = draft(room_id, 2, ann, "same", text="changed")
    assert await backend.store.append(resend) == first
    state = await backend.store.load(room_id)
    assert state is not None and state.last_seq == 1


async def test_the_store_gives_the_next_seq_whatever_the_draft_says(backend: Backend) -> None:
    ann, bob = await backend.new_users(2)
    room_id = await backend.make_room([ann, bob])
    assert (await backend.store.append(draft(room_id, 1, ann, "from-a"))).seq == 1
    # Another activation also thought 1 was next: the store gives the room's next seq.
    assert (await backend.store.append(draft(room_id, 1, bob, "from-b"))).seq == 2
    assert [(m.seq, m.client_id) for m in await backend.store.after(room_id, 0, 10)] == \
        [(1, "from-a"), (2, "from-b")]


async def test_history_ranges(backend: Backend) -> None:
    ann = (await backend.new_users(1))[0]
    room_id = await backend.make_room([ann])
    for seq in range(1, 8):
        await backend.store.append(draft(room_id, seq, ann))

    def seqs(messages: list[Message]) -> list[int]:
        return [m.seq for m in messages]

    assert seqs(await backend.store.after(room_id, 2, 3)) == [3, 4, 5]
    assert seqs(await backend.store.after(room_id, 7, 3)) == []
    assert seqs(await backend.store.before(room_id, None, 3)) == [5, 6, 7]
    assert seqs(await backend.store.before(room_id, 5, 3)) == [2, 3, 4]
    assert seqs(await backend.store.before(room_id, 3, 10)) == [1, 2]


async def test_read_positions_only_move_forward(backend: Backend) -> None:
    ann, bob, eve = await backend.new_users(3)
    room_id = await backend.make_room([ann, bob])
    await backend.store.set_read(room_id, bob, 5)
    await backend.store.set_read(room_id, bob, 3)
    await backend.store.set_read(room_id, eve, 9)  # not a member: ignored
    state = await backend.store.load(room_id)
    assert state is not None
    assert {m.user_id: m.last_read_seq for m in state.members} == {ann: 0, bob: 5}


# -- Postgres only --------------------------------------------------------------------------------


async def test_activations_racing_on_one_room_store_every_message_gapless(
        db_pool: asyncpg.Pool) -> None:
    """Four writers of one room at once, each with a connection of its own (activations on
    four nodes): every message is stored once, under seqs 1..n, none refused."""
    stores = [PostgresRoomStore(db_pool) for _ in range(4)]
    users = await add_users(db_pool, 4)
    room = await PostgresRoomDirectory(db_pool).create_group(new_id(), users[0], users[1:], None)
    results = await asyncio.gather(*(store.append(draft(room.id, 1, u, f"race-{i}-{u}"))
                                     for store, u in zip(stores, users, strict=True)
                                     for i in range(5)))
    assert sorted(m.seq for m in results) == list(range(1, 21))
    assert await db_pool.fetchval("SELECT count(*) FROM messages WHERE room_id = $1",
                                  room.id) == 20
    for store in stores:
        await store.close()  # writes the positions behind the messages
    assert await db_pool.fetchval("SELECT last_seq FROM rooms WHERE id = $1", room.id) == 20


async def test_direct_rooms_are_unique_per_pair_under_concurrency(db_pool: asyncpg.Pool) -> None:
    directory = PostgresRoomDirectory(db_pool)
    ann, bob = await add_users(db_pool, 2)
    results = await asyncio.gather(*(directory.create_direct(*((ann, bob) if i % 2 else
                                                               (bob, ann)))
                                     for i in range(8)))
    assert len({room.id for room, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    room = results[0][0]
    assert room.kind == "direct" and room.name is None
    assert sorted(room.member_ids) == sorted([ann, bob])
    assert await db_pool.fetchval("SELECT count(*) FROM room_members WHERE room_id = $1",
                                  room.id) == 2


async def test_room_views_lists_and_unread_counts(db_pool: asyncpg.Pool) -> None:
    directory, store = PostgresRoomDirectory(db_pool), PostgresRoomStore(db_pool)
    ann, bob, cat = await add_users(db_pool, 3)
    quiet = await directory.create_group(new_id(), ann, [bob], "quiet")
    busy = await directory.create_group(new_id(), ann, [bob, cat], "busy")
    third, _ = await directory.create_direct(ann, cat)
    # Message times from the database clock, so they are surely later than the rooms'
    # creation (a drifting client clock must not reorder the page below).
    base = await db_pool.fetchval("SELECT clock_timestamp()")
    for seq, sender in enumerate([bob, cat, ann, bob], start=1):
        message = msgspec.structs.replace(draft(busy.id, seq, sender),
                                          created_at=base + timedelta(milliseconds=seq))
        last = await store.append(message)
    view = await directory.room(busy.id, ann)
    assert view is not None and view.last_seq == 4 and view.last_message == last
    assert view.unread_count == 1  # ann sent seq 3, which reads everything before it
    # Members in join order, then by id: all three joined in the room's creating transaction.
    assert view.member_ids == sorted([ann, bob, cat])
    assert (await directory.room(busy.id, cat)).unread_count == 2  # type: ignore[union-attr]
    assert await directory.room(quiet.id, cat) is None
    assert await directory.room(new_id(), ann) is None

    page, after = await directory.rooms(ann, limit=2, after=None)
    # busy has the newest activity (its messages are later than any creation), then the
    # rooms by creation: the direct room was created after quiet.
    assert [r.id for r in page] == [busy.id, third.id] and after is not None
    rest, end = await directory.rooms(ann, limit=2, after=after)
    assert [r.id for r in rest] == [quiet.id] and end is None
    assert rest[0].last_message is None and rest[0].unread_count == 0


async def test_members_add_with_a_cap_and_the_owner_hands_over(db_pool: asyncpg.Pool) -> None:
    directory = PostgresRoomDirectory(db_pool)
    ann, bob, cat, dan, eve = await add_users(db_pool, 5)
    room = await directory.create_group(new_id(), ann, [bob], None)
    assert await directory.role(room.id, ann) == "owner"
    assert await directory.add_members(room.id, [bob, cat], max_members=3)  # bob already in
    assert not await directory.add_members(room.id, [dan], max_members=3)
    assert await directory.existing_users([dan, new_id()]) == {dan}
    assert await directory.remove_members(room.id, [ann, eve]) == [ann]
    assert await directory.role(room.id, ann) is None
    assert await directory.role(room.id, bob) == "owner"  # longest-standing after ann
    assert await directory.role(room.id, cat) == "member"


async def test_blocks_between_finds_pairs_either_way(db_pool: asyncpg.Pool) -> None:
    directory = PostgresRoomDirectory(db_pool)
    ann, bob, cat, dan = await add_users(db_pool, 4)
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2), ($3, $4)",
                          ann, bob, dan, cat)
    assert await directory.blocks_between([bob, cat], [ann, dan]) == {
        frozenset((ann, bob)), frozenset((cat, dan))}
    assert await directory.blocks_between([ann], [cat, dan]) == set()


async def test_offline_members_get_one_unread_message_notification_per_room(
        db_pool: asyncpg.Pool) -> None:
    notifier, store = PostgresMessageNotifier(db_pool), PostgresRoomStore(db_pool)
    ann, bob, cat = await add_users(db_pool, 3)
    room = await PostgresRoomDirectory(db_pool).create_group(new_id(), ann, [bob, cat], None)

    async def rows(user_id: str) -> list[asyncpg.Record]:
        return await db_pool.fetch(
            "SELECT id, actor_id, room_id, data, read_at FROM notifications"
            " WHERE user_id = $1 AND kind = 'message' ORDER BY id", user_id)

    first = await store.append(draft(room.id, 1, ann, text="x" * 500))
    await notifier.notify_offline([bob, cat, ann], first)  # the sender is never notified
    assert await rows(ann) == []
    [bobs] = await rows(bob)
    assert (bobs["actor_id"], bobs["room_id"]) == (ann, room.id)
    assert bobs["data"] == {"room_id": room.id, "message_id": first.id, "seq": 1,
                            "text": "x" * 140}
    # While it is unread, later messages add nothing: it names the first one missed.
    await notifier.notify_offline([bob], await store.append(draft(room.id, 2, cat)))
    assert await rows(bob) == [bobs]
    # Reading the room up to it reads it; the next message starts a new one.
    await store.set_read(room.id, bob, 2)
    [read] = await rows(bob)
    assert read["read_at"] is not None
    third = await store.append(draft(room.id, 3, ann))
    await notifier.notify_offline([bob], third)
    assert [r["data"]["seq"] for r in await rows(bob)] == [1, 3]
    # Reading up to an earlier seq leaves a notification about a later message unread.
    await store.set_read(room.id, cat, 1)
    await notifier.notify_offline([cat], third)
    await store.set_read(room.id, cat, 2)
    assert [(r["data"]["seq"], r["read_at"] is None) for r in await rows(cat)] == [
        (1, False), (3, True)]



async def test_a_stored_message_writes_message_sent_to_the_outbox(
        db_pool: asyncpg.Pool) -> None:
    """The contract's hubbub.chat event is committed with the message, and only once."""
    store = PostgresRoomStore(db_pool)
    users = await add_users(db_pool, 2)
    room = await PostgresRoomDirectory(db_pool).create_group(new_id(), users[0], users[1:], None)
    message = draft(room.id, 1, users[0], "c-outbox")
    await store.append(message)
    await store.append(message)  # a resend: no second message, no second event
    rows = await db_pool.fetch(
        "SELECT topic, envelope FROM outbox WHERE type = 'message.sent' AND key = $1", room.id)
    assert len(rows) == 1 and len(rows[0]["envelope"]) == 1  # a batch's events share a row
    assert rows[0]["topic"] == "hubbub.chat"
    assert rows[0]["envelope"][0]["data"]["message_id"] == message.id
    assert rows[0]["envelope"][0]["data"]["seq"] == 1
