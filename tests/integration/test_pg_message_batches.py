"""Group commit of chat messages (storage/postgres/message_batches.py) against a real
Postgres, alone and under RoomActors: acked means committed, seqs stay 1..n per room under
concurrent senders, a failed batch acks none of its messages wrongly, resends stay
idempotent inside a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
import pytest_asyncio

from actors.actor import ActorContext
from actors.clock import ManualClock
from actors.room import RoomActor, RoomPorts
from actors.system import ActorSystem
from protocols.chat import Message
from protocols.ids import new_id
from protocols.room_messages import SendMessage
from storage.memory.chat_history import MemoryChatHistory
from storage.postgres import append_batch
from storage.postgres.chat import PostgresRoomStore
from storage.postgres.chat_rooms import PostgresRoomDirectory
from storage.postgres.message_batches import MessageBatcher
from storage.postgres.migrate import migrate
from storage.postgres.outbox import OUTBOX_CHANNEL
from tests.integration.test_pg_chat import add_users, draft
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually
from tests.unit.chat.fakes import (
    FakePresence,
    RecordingBroadcaster,
    RecordingNotifier,
    RecordingRoomSockets,
)

pytestmark = pytest.mark.integration


async def new_room(pool: asyncpg.Pool, members: list[str]) -> str:
    room = await PostgresRoomDirectory(pool).create_group(new_id(), members[0], members[1:],
                                                          None)
    return room.id


async def stored(pool: asyncpg.Pool, room_id: str) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT seq, client_id FROM messages WHERE room_id = $1 "
                            "ORDER BY seq", room_id)
    return [(r["seq"], r["client_id"]) for r in rows]


@pytest_asyncio.fixture
async def batchers(db_pool: asyncpg.Pool) -> AsyncIterator[Callable[[], MessageBatcher]]:
    """Batchers on the test pool, each closed at the end (a batcher holds a connection)."""
    made: list[MessageBatcher] = []

    def make() -> MessageBatcher:
        made.append(MessageBatcher(db_pool))
        return made[-1]

    yield make
    for batcher in made:
        await batcher.close()


async def outbox_count(pool: asyncpg.Pool, message_ids: list[str]) -> int:
    """`message.sent` events of these messages in the outbox (a batch's share one row)."""
    return await pool.fetchval(
        "SELECT count(*) FROM outbox o, jsonb_array_elements(o.envelope) e "
        "WHERE o.type = 'message.sent' AND e -> 'data' ->> 'message_id' = ANY($1::text[])",
        message_ids)


async def positions(pool: asyncpg.Pool, room_id: str, user_id: str) -> tuple[int, int]:
    """(rooms.last_seq, the user's last_read_seq) as stored."""
    row = await pool.fetchrow(
        "SELECT r.last_seq, rm.last_read_seq FROM rooms r JOIN room_members rm "
        "ON rm.room_id = r.id WHERE r.id = $1 AND rm.user_id = $2", room_id, user_id)
    return row["last_seq"], row["last_read_seq"]


async def test_messages_appended_together_share_one_commit(db_pool: asyncpg.Pool,
        batchers: Callable[[], MessageBatcher]) -> None:
    users = await add_users(db_pool, 3)
    rooms = [await new_room(db_pool, users) for _ in range(4)]
    batcher = batchers()
    # Texts JSON must escape on their way to the statement.
    messages = [draft(room, 1, users[i % 3], text=f'"{i}" \\ \n caf\u00e9 \U0001f389')
                for i, room in enumerate(rooms)]

    results = await asyncio.gather(*(batcher.append(m) for m in messages))

    assert results == messages  # each stored as seq 1 of its room
    assert (batcher.batches, batcher.messages) == (1, 4)
    for room, message in zip(rooms, messages, strict=True):
        # Committed by the time append answered: visible on another connection.
        assert await stored(db_pool, room) == [(1, message.client_id)]
        row = await db_pool.fetchrow(
            "SELECT id, sender_id, text, kind, created_at FROM messages WHERE room_id = $1",
            room)
        assert (str(row["id"]), str(row["sender_id"]), row["text"], row["kind"],
                row["created_at"]) == (message.id, message.sender_id, message.text,
                                       message.kind, message.created_at)
    # Their four events in one outbox row.
    assert await outbox_count(db_pool, [m.id for m in messages]) == 4
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE type = 'message.sent'"
                                  " AND jsonb_array_length(envelope) = 4") == 1
    await batcher.close()  # writes the positions noted (else within POSITIONS_DELAY)
    for i, room in enumerate(rooms):
        assert await positions(db_pool, room, users[i % 3]) == (1, 1)


async def event_seqs(pool: asyncpg.Pool, message_ids: list[str]) -> list[int]:
    """The seqs the outbox's `message.sent` events of these messages carry."""
    rows = await pool.fetch(
        "SELECT (e -> 'data' ->> 'seq')::bigint AS seq FROM outbox o, "
        "jsonb_array_elements(o.envelope) e WHERE o.type = 'message.sent' "
        "AND e -> 'data' ->> 'message_id' = ANY($1::text[]) ORDER BY 1", message_ids)
    return [r["seq"] for r in rows]


async def test_a_seq_taken_by_another_writer_meanwhile_goes_to_the_next_message(
        db_pool: asyncpg.Pool, batchers: Callable[[], MessageBatcher]) -> None:
    """Another activation of the room (another node, a view change) writes seq 2 while this
    node's batch is computing the same: the batch fails on UNIQUE (room_id, seq), and its
    messages, written one by one, take the next seqs; nothing fails, nothing has a gap."""
    users = await add_users(db_pool, 2)
    contested, other = await new_room(db_pool, users), await new_room(db_pool, users)
    batcher = batchers()
    assert (await batcher.append(draft(contested, 1, users[0], "first"))).seq == 1
    async with db_pool.acquire() as elsewhere:
        transaction = elsewhere.transaction()
        await transaction.start()
        await elsewhere.execute(
            "INSERT INTO messages (id, room_id, seq, sender_id, client_id, text, kind, "
            "created_at) VALUES ($1, $2, 2, $3, 'elsewhere', 'x', 'text', now())",
            new_id(), contested, users[1])
        mine, bystander = draft(contested, 2, users[1], "mine"), draft(other, 1, users[1])
        appends = asyncio.gather(batcher.append(mine), batcher.append(bystander))

        async def blocked() -> bool:  # our statement waits for the other writer's row
            return await db_pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO messages%'") > 0

        await eventually(blocked, 10, "the batch to wait on the other writer's seq 2")
        await transaction.commit()
        results = await appends
    assert [(m.id, m.seq) for m in results] == [(mine.id, 3), (bystander.id, 1)]
    assert await stored(db_pool, contested) == [(1, "first"), (2, "elsewhere"), (3, "mine")]
    assert await stored(db_pool, other) == [(1, bystander.client_id)]
    assert await event_seqs(db_pool, [mine.id]) == [3]  # the event carries the seq given
    assert await event_seqs(db_pool, [bystander.id]) == [1]
    await batcher.close()
    assert await positions(db_pool, contested, users[1]) == (3, 3)
    assert await positions(db_pool, other, users[1]) == (1, 1)


async def test_positions_follow_within_the_delay(db_pool: asyncpg.Pool,
        batchers: Callable[[], MessageBatcher]) -> None:
    users = await add_users(db_pool, 2)
    room = await new_room(db_pool, users)
    batcher = MessageBatcher(db_pool, positions_delay=0.05)
    try:
        assert await batcher.append(draft(room, 1, users[1], "a")) is not None
        assert await batcher.append(draft(room, 2, users[1], "b")) is not None
        # Written by the batcher's own timer, not by close(): another connection can only look.
        async def written() -> bool:
            return await positions(db_pool, room, users[1]) == (2, 2)

        await eventually(written, 5, "the positions to be written behind")
    finally:
        await batcher.close()


async def test_a_room_whose_positions_were_never_written_is_repaired_on_load(
        db_pool: asyncpg.Pool) -> None:
    """A node killed before its flush: the next load of the room writes what it lost, and
    room views and loads are exact before that."""
    users = await add_users(db_pool, 2)
    room = await new_room(db_pool, users)
    lost = MessageBatcher(db_pool, positions_delay=3600)  # its flush never comes in time
    try:
        for seq, sender in ((1, users[0]), (2, users[1]), (3, users[0])):
            assert (await lost.append(draft(room, seq, sender, f"m{seq}"))).seq == seq
        assert await positions(db_pool, room, users[0]) == (0, 0)
        view = await PostgresRoomDirectory(db_pool).room(room, users[1])
        assert view is not None and view.last_seq == 3 and view.unread_count == 1
        assert view.last_message is not None and view.last_message.seq == 3

        state = await PostgresRoomStore(db_pool, MessageBatcher(db_pool)).load(room)

        assert state is not None and state.last_seq == 3
        assert {m.user_id: m.last_read_seq for m in state.members} == {users[0]: 3,
                                                                       users[1]: 2}
        assert await positions(db_pool, room, users[0]) == (3, 3)
        assert await positions(db_pool, room, users[1]) == (3, 2)
    finally:
        lost._positions.take()  # the "killed" node's flush never happens
        await lost.close()


async def test_a_message_breaking_a_constraint_fails_alone(db_pool: asyncpg.Pool,
        batchers: Callable[[], MessageBatcher]) -> None:
    users = await add_users(db_pool, 2)
    room = await new_room(db_pool, users)
    batcher = batchers()
    good = draft(room, 1, users[0])
    doomed = draft(new_id(), 1, users[0])  # no such room: the foreign key refuses it

    results = await asyncio.gather(batcher.append(good), batcher.append(doomed),
                                   return_exceptions=True)

    assert results[0] == good
    assert isinstance(results[1], asyncpg.ForeignKeyViolationError)
    assert await stored(db_pool, room) == [(1, good.client_id)]


async def test_a_failed_batch_stores_and_acks_none_of_its_messages(
        db_pool: asyncpg.Pool, batchers: Callable[[], MessageBatcher]) -> None:
    users = await add_users(db_pool, 2)
    rooms = [await new_room(db_pool, users) for _ in range(3)]
    batcher = batchers()
    assert await batcher.append(draft(rooms[0], 1, users[0], "warm-up")) is not None
    # The batcher's connection dies under it (a Postgres restart, a proxy dropping it); so
    # do those of other batchers that wrote here lately, which changes nothing for them.
    killed = await db_pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE '%INSERT INTO messages%' "
        "AND pid <> pg_backend_pid()")
    assert killed >= 1
    batch = [draft(rooms[0], 2, users[0]), draft(rooms[1], 1, users[1]),
             draft(rooms[2], 1, users[0])]

    results = await asyncio.gather(*(batcher.append(m) for m in batch),
                                   return_exceptions=True)

    assert all(isinstance(r, Exception) for r in results), results
    assert [await stored(db_pool, r) for r in rooms] == [[(1, "warm-up")], [], []]
    assert await outbox_count(db_pool, [m.id for m in batch]) == 0
    # The next messages go through a fresh connection.
    again = await asyncio.gather(*(batcher.append(m) for m in batch))
    assert [m.seq for m in again if m is not None] == [2, 1, 1]
    assert [len(await stored(db_pool, r)) for r in rooms] == [2, 1, 1]


async def test_resends_inside_a_batch_store_one_message(db_pool: asyncpg.Pool,
        batchers: Callable[[], MessageBatcher]) -> None:
    users = await add_users(db_pool, 2)
    room, other = await new_room(db_pool, users), await new_room(db_pool, users)
    store = PostgresRoomStore(db_pool, batchers())
    earlier = await store.append(draft(room, 1, users[0], "already"))
    first, again = draft(other, 1, users[1], "twice"), draft(other, 2, users[1], "twice")
    resend = draft(room, 2, users[0], "already")  # of a message committed earlier

    results = await asyncio.gather(store.append(first), store.append(again),
                                   store.append(resend))

    assert results[0].id == first.id
    assert results[1].id == first.id and results[1].seq == 1  # the first, not a new one
    assert results[2].id == earlier.id and results[2].seq == 1
    assert await stored(db_pool, other) == [(1, "twice")]
    assert await stored(db_pool, room) == [(1, "already")]
    assert await outbox_count(db_pool, [again.id, resend.id]) == 0


@pytest_asyncio.fixture
async def room_system(db_pool: asyncpg.Pool) -> AsyncIterator[tuple[ActorSystem,
                                                                   MessageBatcher]]:
    batcher = MessageBatcher(db_pool)
    store = PostgresRoomStore(db_pool, batcher)
    system = ActorSystem(clock=ManualClock())

    def factory(key: str, context: ActorContext) -> RoomActor:
        return RoomActor(key, context, RoomPorts(
            store=store, history=MemoryChatHistory(), broadcaster=RecordingBroadcaster(),
            presence=FakePresence(), notifier=RecordingNotifier(),
            sockets=RecordingRoomSockets()))

    system.register(RoomActor, factory)
    yield system, batcher
    await system.stop()
    await batcher.close()


async def test_concurrent_senders_on_several_rooms_keep_each_room_gapless(
        db_pool: asyncpg.Pool, room_system: tuple[ActorSystem, MessageBatcher]) -> None:
    system, batcher = room_system
    users = await add_users(db_pool, 5)
    rooms = [await new_room(db_pool, users) for _ in range(8)]
    per_sender = 6

    async def sender(room_id: str, user: str) -> list[Message]:
        ref = system.ref(RoomActor, room_id)
        return [await ref.ask(SendMessage(user_id=user, client_id=f"{user}-{i}",
                                          text=f"{i}"), timeout=10)
                for i in range(per_sender)]

    acked = await asyncio.gather(*(sender(r, u) for r in rooms for u in users))

    total = len(rooms) * len(users) * per_sender
    assert batcher.messages == total
    assert batcher.batches < total  # messages of different rooms shared commits
    for room in rooms:
        rows = await stored(db_pool, room)
        assert [seq for seq, _ in rows] == list(range(1, len(users) * per_sender + 1))
        acked_here = sorted((m.seq, m.client_id) for ms in acked for m in ms
                            if m.room_id == room)
        assert acked_here == rows  # every ack names a committed row, and the other way round
        # Each sender's own messages were acked in the order it sent them.
        for user in users:
            mine = [m for ms in acked for m in ms if m.room_id == room and m.sender_id == user]
            assert [m.seq for m in mine] == sorted(m.seq for m in mine)


async def notifications_until_marker(listener: asyncpg.Connection,
                                     heard: asyncio.Queue[str]) -> list[str]:
    """What the listener heard on the outbox channel, up to a marker NOTIFY sent now."""
    await listener.execute(f"NOTIFY {OUTBOX_CHANNEL}, 'marker'")
    got = [await asyncio.wait_for(heard.get(), 10)]
    while got[-1] != "marker":
        got.append(await asyncio.wait_for(heard.get(), 10))
    return got[:-1]


@pytest.mark.parametrize(("notify_every", "wakes"), [(60.0, 1), (0.0, 2)])
async def test_a_batch_soon_after_a_notified_one_does_not_notify(
        db_pool: asyncpg.Pool, database_dsn: str, notify_every: float, wakes: int) -> None:
    """NOTIFY_EVERY: a batch within the interval of a notified one commits its outbox row
    without a NOTIFY (the relay woken by the first reads it); with no interval, each does."""
    ann, bob = await add_users(db_pool, 2)
    room_id = await new_room(db_pool, [ann, bob])
    listener = await asyncpg.connect(database_dsn)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    batcher = MessageBatcher(db_pool, notify_every=notify_every)
    try:
        first, second = draft(room_id, 1, ann), draft(room_id, 2, bob)
        assert await batcher.append(first)
        assert await batcher.append(second)
        assert await notifications_until_marker(listener, heard) == [""] * wakes
        # Both events are in the outbox all the same.
        assert await outbox_count(db_pool, [first.id, second.id]) == 2
    finally:
        await batcher.close()
        await listener.close()


async def test_the_batch_statement_probes_messages_by_index_whatever_its_size(
        admin_pg_dsn: str) -> None:
    """The plan the batcher's connection keeps for the statement (a generic one, made once)
    reads `messages` only through its indexes, also when it is made in a new database whose
    table the planner knows to be (nearly) empty and would rather scan: that plan grew slower
    with every message."""
    dsn = await create_database(admin_pg_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("ANALYZE messages")  # as autovacuum does early: "it is empty"
        await conn.execute(append_batch.CONNECTION_SETUP)
        await conn.execute(f"PREPARE append_batch AS {append_batch.APPEND_BATCH}")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN EXECUTE append_batch('[]', 'topic', 'type', NULL, false)"))
    finally:
        await conn.close()
        await drop_database(admin_pg_dsn, dsn)
    assert "using messages_client_key on messages" in plan, plan
    assert "Backward using messages_room_seq_key on messages" in plan, plan
    assert "Seq Scan on messages" not in plan, plan
