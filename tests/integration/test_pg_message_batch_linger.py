"""When the group commit makes a batch wait for company (storage/postgres/message_batches.py,
storage/arrival_pace.py): only while another message is due within the linger, and then only
until it has company. Each batcher runs on a clock of the test's own."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage.postgres.message_batches import MessageBatcher
from tests.integration.test_pg_chat import add_users, draft
from tests.integration.test_pg_message_batches import new_room, stored
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def test_a_streaming_batch_lingers_only_until_it_has_company(
        db_pool: asyncpg.Pool) -> None:
    ann, bob = await add_users(db_pool, 2)
    room = await new_room(db_pool, [ann, bob])
    now = [0.0]
    # A linger no test waits out: a message a second is far more than one per 60 s.
    batcher = MessageBatcher(db_pool, linger=60.0, fill=2, clock=lambda: now[0])

    try:
        seq = 0
        while True:  # each written at once, until the stream shows: that one waits
            seq += 1
            now[0] += 1.0
            waiting = asyncio.ensure_future(batcher.append(draft(room, seq, ann)))

            async def settled(waiting: asyncio.Future[object] = waiting) -> bool:
                return waiting.done() or batcher.lingering

            await eventually(settled, 10, f"message {seq} written or waiting for company")
            if batcher.lingering:
                break
            assert waiting.result() is not None
        assert seq > 2, "a node that just started waited for company"
        assert batcher.streaming and batcher.batches == seq - 1 and not waiting.done()
        async with asyncio.timeout(10):  # ...until a second message is queued, not 60 s
            now[0] += 1.0
            stored_now = await asyncio.gather(waiting, batcher.append(draft(room, seq + 1, bob)))
        assert [m.seq for m in stored_now if m is not None] == [seq, seq + 1]
        assert (batcher.batches, batcher.messages) == (seq, seq + 1)
        assert await stored(db_pool, room) == [(n, f"c{n}") for n in range(1, seq + 2)]
    finally:
        await batcher.close()


async def test_a_slow_stream_is_written_at_once(db_pool: asyncpg.Pool) -> None:
    # Less than one message due within the linger: waiting would only delay each one.
    ann, bob = await add_users(db_pool, 2)
    room = await new_room(db_pool, [ann, bob])
    now = [0.0]
    batcher = MessageBatcher(db_pool, linger=60.0, fill=2, clock=lambda: now[0])
    try:
        async with asyncio.timeout(10):  # a batch that lingered would take 60 s
            for seq in range(1, 21):
                now[0] += 90.0  # a message per 90 s: two thirds of one due in the 60 s linger
                stored_now = await batcher.append(draft(room, seq, (ann, bob)[seq % 2]))
                assert stored_now is not None and stored_now.seq == seq
                assert not batcher.streaming
        assert (batcher.batches, batcher.messages) == (20, 20)
    finally:
        await batcher.close()
