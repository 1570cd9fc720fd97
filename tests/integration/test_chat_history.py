"""The HotHistory contract, run over the Redis adapter (real Redis, a key prefix per test; with
redis-py's client, and with the multiplexed one the app builds, which answers an append once
its call is written) and the in-memory one: ranges by seq, idempotent appends, the length
bound, the age bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.ports import HotHistory
from protocols.chat import Message
from protocols.ids import new_id
from storage.errors import StorageError
from storage.memory.chat_history import MemoryChatHistory
from storage.redis.chat_history import RedisChatHistory
from storage.redis.multiplexed import MultiplexedRedis

pytestmark = pytest.mark.integration

LENGTH = 10
MAX_AGE = 1000.0
START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    history: HotHistory
    clock: FakeClock
    client: redis.Redis | None = None
    key_prefix: str = ""


@pytest_asyncio.fixture(params=["memory", "redis", "multiplexed"])
async def backend(request: pytest.FixtureRequest, redis_client: redis.Redis,
                  mux: MultiplexedRedis, clean_redis_prefix: str) -> AsyncIterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        yield Backend(MemoryChatHistory(max_messages=LENGTH, max_age=MAX_AGE, clock=clock),
                      clock)
        return
    client = redis_client if request.param == "redis" else mux
    history = RedisChatHistory(client, clean_redis_prefix, max_messages=LENGTH,
                               max_age=MAX_AGE, clock=clock)
    yield Backend(history, clock, client, clean_redis_prefix)
    await history.close()
    assert history.failures == 0


def message(room_id: str, seq: int, at: float = START, text: str = "") -> Message:
    return Message(id=new_id(), room_id=room_id, seq=seq, sender_id=new_id(),
                   text=text or f"message {seq} ✓", client_id=f"c{seq}",
                   created_at=datetime.fromtimestamp(at, UTC))


async def fill(history: HotHistory, room_id: str, seqs: range, at: float = START) -> list[Message]:
    sent = [message(room_id, seq, at) for seq in seqs]
    for m in sent:
        await history.append(m)
    return sent


async def test_ranges_after_a_seq_in_order_and_round_trip(backend: Backend) -> None:
    room, other = new_id(), new_id()
    sent = await fill(backend.history, room, range(1, 8))
    await fill(backend.history, other, range(1, 3))
    assert await backend.history.after(room, 0, 100) == sent
    assert await backend.history.after(room, 3, 2) == sent[3:5]
    assert await backend.history.after(room, 7, 5) == []
    assert await backend.history.after(new_id(), 0, 5) == []
    assert [m.seq for m in await backend.history.after(other, 0, 10)] == [1, 2]


async def test_appends_are_idempotent_per_seq_and_may_arrive_out_of_order(
        backend: Backend) -> None:
    room = new_id()
    three, one, two = message(room, 3), message(room, 1), message(room, 2)
    for m in (three, one, two, three):
        await backend.history.append(m)
    assert await backend.history.after(room, 0, 10) == [one, two, three]


async def test_only_the_newest_messages_are_kept(backend: Backend) -> None:
    room = new_id()
    sent = await fill(backend.history, room, range(1, 26))
    kept = await backend.history.after(room, 0, 100)
    assert kept == sent[-LENGTH:]
    # A reader asking from before the window sees a hole at the start and reads Postgres.
    assert kept[0].seq == 26 - LENGTH
    if backend.client is not None:
        assert await backend.client.zcard(f"{backend.key_prefix}chat:history:{room}") == LENGTH


async def test_messages_older_than_max_age_are_forgotten(backend: Backend) -> None:
    room = new_id()
    old = await fill(backend.history, room, range(1, 4), at=START)
    backend.clock.now = START + MAX_AGE - 1
    young = await fill(backend.history, room, range(4, 6), at=backend.clock.now)
    assert await backend.history.after(room, 0, 10) == old + young
    backend.clock.now = START + MAX_AGE + 1  # the first three are now too old
    assert await backend.history.after(room, 0, 10) == young
    newest = await fill(backend.history, room, range(6, 7), at=backend.clock.now)
    assert await backend.history.after(room, 0, 10) == young + newest
    if backend.client is not None:
        key = f"{backend.key_prefix}chat:history:{room}"
        assert await backend.client.zcard(key) == 3  # trimmed, not just hidden
        assert 0 < await backend.client.pttl(key) <= MAX_AGE * 1000


async def test_concurrent_appends_of_several_rooms_each_land(backend: Backend) -> None:
    rooms = [new_id() for _ in range(5)]
    await asyncio.gather(*(backend.history.append(message(room, seq))
                           for seq in range(1, 4) for room in rooms))
    for room in rooms:
        assert [m.seq for m in await backend.history.after(room, 0, 10)] == [1, 2, 3]


async def test_redis_appends_of_one_loop_turn_are_one_script_call(
        redis_client: redis.Redis, clean_redis_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    history = RedisChatHistory(redis_client, clean_redis_prefix, clock=FakeClock())
    calls: list[int] = []
    evalsha = redis_client.evalsha

    async def counted(sha: str, numkeys: int, *keys_and_args: object) -> object:
        calls.append(numkeys)
        return await evalsha(sha, numkeys, *keys_and_args)

    monkeypatch.setattr(redis_client, "evalsha", counted)
    rooms = [new_id() for _ in range(4)]
    await asyncio.gather(*(history.append(message(room, 1)) for room in rooms))
    assert calls == [4]  # four rooms' keys, one call, one round trip
    for room in rooms:
        assert [m.seq for m in await history.after(room, 0, 10)] == [1]


@pytest.mark.parametrize("multiplexed", [False, True])
async def test_redis_appends_survive_a_script_flush(
        redis_client: redis.Redis, mux: MultiplexedRedis, clean_redis_prefix: str,
        multiplexed: bool) -> None:
    # Redis keeps no scripts across a restart: the first append after one loads it again
    # (in the background when the append answered on being written).
    client = mux if multiplexed else redis_client
    history = RedisChatHistory(client, clean_redis_prefix, clock=FakeClock())
    room = new_id()
    await history.append(message(room, 1))
    await client.script_flush()
    await asyncio.gather(history.append(message(room, 2)), history.append(message(room, 3)))
    await history.close()
    assert [m.seq for m in await history.after(room, 0, 10)] == [1, 2, 3]
    assert history.failures == 0


async def test_a_multiplexed_append_is_queued_on_the_connection_before_its_caller_goes_on(
        mux: MultiplexedRedis, clean_redis_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    history = RedisChatHistory(mux, clean_redis_prefix, clock=FakeClock())
    await mux.ping()  # connected: appends are written without a connect
    calls: list[object] = []
    send_now = mux.send_now

    def counted(*args: object) -> asyncio.Future[object] | None:
        calls.append(args[3])  # the key
        return send_now(*args)

    monkeypatch.setattr(mux, "send_now", counted)
    rooms = [new_id() for _ in range(4)]
    for room in rooms:
        appending = history.append(message(room, 1))
        with pytest.raises(StopIteration):  # finished in its first step: it awaited nothing
            appending.send(None)
    assert calls == [f"{clean_redis_prefix}chat:history:{room}" for room in rooms]
    for room in rooms:  # a later command of the client comes after the call
        assert [m.seq for m in await history.after(room, 0, 10)] == [1]
    await history.close()


async def test_a_multiplexed_append_that_redis_refuses_is_counted_and_logged(
        mux: MultiplexedRedis, clean_redis_prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # The append answered when written; Redis's refusal (here: the key holds a string)
    # comes after, and must not pass unnoticed.
    history = RedisChatHistory(mux, clean_redis_prefix, clock=FakeClock())
    room = new_id()
    await mux.set(f"{clean_redis_prefix}chat:history:{room}", "not a sorted set")
    await history.append(message(room, 1))
    await history.close()
    assert history.failures == 1
    assert "1 appends lost" in caplog.text and "WRONGTYPE" in caplog.text


async def test_redis_down_fails_each_append(clean_redis_prefix: str) -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                              retry=Retry(NoBackoff(), 0))
    history = RedisChatHistory(unreachable, clean_redis_prefix, clock=FakeClock())
    results = await asyncio.gather(history.append(message(new_id(), 1)),
                                   history.append(message(new_id(), 1)),
                                   return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results), results
    assert history.failures == 2
    await unreachable.aclose()


async def test_an_append_answers_once_written_and_readers_see_it(
        redis_client: redis.Redis, clean_redis_prefix: str) -> None:
    history = RedisChatHistory(redis_client, clean_redis_prefix, clock=FakeClock())
    room = new_id()
    await history.append(message(room, 1))
    # Written by the time append answered (what makes "pushed" imply "cached").
    assert await redis_client.zcard(f"{clean_redis_prefix}chat:history:{room}") == 1
    assert [m.seq for m in await history.after(room, 0, 10)] == [1]
    await history.close()
