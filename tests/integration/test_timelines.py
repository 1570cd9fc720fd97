"""The TimelineStore contract, run over the Redis adapter (real Redis, a key prefix per test)
and the in-memory one: ordering, paging, the bounded head, live/built states, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis.asyncio as redis

from protocols.ids import new_id
from server.feed.ports import TimelineStore
from storage.memory.timelines import MemoryTimelineStore
from storage.redis.timelines import RedisTimelineStore

pytestmark = pytest.mark.integration

LENGTH = 10
TTL = 100


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    store: TimelineStore
    kind: str
    clock: FakeClock
    client: redis.Redis | None = None
    prefix: str = ""

    async def expire(self, user_id: str) -> None:
        """What the passing of `ttl` idle seconds does."""
        if self.client is not None:
            await self.client.delete(f"{self.prefix}timeline:{user_id}")
        else:
            self.clock.now += TTL + 1

    async def ttl_left(self, user_id: str) -> float:
        if self.client is not None:
            return float(await self.client.ttl(f"{self.prefix}timeline:{user_id}"))
        timeline = self.store._timelines[user_id]  # type: ignore[attr-defined]
        return timeline.expires_at - self.clock.now


@pytest_asyncio.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, redis_client: redis.Redis,
                  clean_redis_prefix: str) -> AsyncIterator[Backend]:
    clock = FakeClock()
    if request.param == "memory":
        yield Backend(MemoryTimelineStore(length=LENGTH, ttl=TTL, clock=clock), "memory", clock)
        return
    client, prefix = redis_client, clean_redis_prefix
    store = RedisTimelineStore(client, prefix, length=LENGTH, ttl=TTL)
    yield Backend(store, "redis", clock, client, prefix)


def ids(n: int) -> list[str]:
    """n ascending post ids (UUIDv7 only orders by millisecond: sort within one)."""
    return sorted(new_id() for _ in range(n))


async def built(store: TimelineStore, user_id: str, seed: Sequence[str] = ()) -> None:
    async def load() -> Sequence[str]:
        return seed

    await store.rebuild(user_id, load)


async def test_missing_until_rebuilt_and_adds_skip_missing(backend: Backend) -> None:
    store, user = backend.store, new_id()
    assert await store.page(user, None, 5) is None
    assert not await store.exists(user)
    await store.add([user], new_id())  # missing: skipped, still missing
    assert await store.page(user, None, 5) is None
    await built(store, user)
    assert await store.exists(user)
    assert await store.page(user, None, 5) == []  # built and empty is not missing


async def test_pages_newest_first_strictly_before(backend: Backend) -> None:
    store, user = backend.store, new_id()
    posts = ids(8)
    await built(store, user, posts[:4])
    for post in posts[4:]:
        await store.add([user], post)
    newest_first = posts[::-1]
    assert await store.page(user, None, 3) == newest_first[:3]
    assert await store.page(user, newest_first[2], 3) == newest_first[3:6]
    assert await store.page(user, newest_first[5], 10) == newest_first[6:]
    assert await store.page(user, newest_first[-1], 10) == []
    # A cursor that is not a member still resumes at the right place.
    between = posts[3][:-1] + ("f" if posts[3][-1] != "f" else "e")
    expected = [p for p in newest_first if p < between][:2]
    assert await store.page(user, between, 2) == expected


async def test_add_is_idempotent_and_batched(backend: Backend) -> None:
    store = backend.store
    users = [new_id() for _ in range(5)]
    for user in users[:4]:
        await built(store, user)
    post = new_id()
    await store.add(users, post)
    await store.add(users, post)
    for user in users[:4]:
        assert await store.page(user, None, 10) == [post]
    assert await store.page(users[4], None, 10) is None
    await store.add([], post)  # nothing to do is fine


async def test_head_is_bounded_to_the_newest(backend: Backend) -> None:
    store, user = backend.store, new_id()
    posts = ids(LENGTH * 2 + 3)
    await built(store, user, posts[: LENGTH + 5])  # the rebuild itself is trimmed
    assert await store.page(user, None, 100) == posts[5: LENGTH + 5][::-1]
    for post in posts[LENGTH + 5:]:
        await store.add([user], post)
    assert await store.page(user, None, 100) == posts[-LENGTH:][::-1]
    await store.add([user], posts[0])  # older than the whole head: dropped at once
    assert await store.page(user, None, 100) == posts[-LENGTH:][::-1]
    assert await store.exists(user)  # trimming never removes the built marker


async def test_extend_and_remove(backend: Backend) -> None:
    store, user = backend.store, new_id()
    posts = ids(6)
    await store.extend(user, posts)  # missing: skipped
    assert await store.page(user, None, 10) is None
    await built(store, user, posts[:2])
    await store.extend(user, posts[2:])
    assert await store.page(user, None, 10) == posts[::-1]
    await store.remove(user, [posts[1], posts[4], new_id()])
    await store.remove(user, [posts[1]])
    assert await store.page(user, None, 10) == [posts[5], posts[3], posts[2], posts[0]]
    await store.remove(new_id(), posts)  # a missing timeline: nothing happens


async def test_adds_during_a_rebuild_are_kept(backend: Backend) -> None:
    store, user = backend.store, new_id()
    *snapshot, pushed = ids(4)
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_load() -> Sequence[str]:
        started.set()
        await release.wait()
        return snapshot  # the snapshot predates `pushed`

    rebuilding = asyncio.create_task(store.rebuild(user, slow_load))
    await started.wait()
    assert await store.page(user, None, 10) is None  # live, not built: readers rebuild too
    await store.add([user], pushed)  # lands although the rebuild has not finished
    release.set()
    await rebuilding
    assert await store.page(user, None, 10) == [pushed, *snapshot[::-1]]


async def test_failed_rebuild_leaves_it_unbuilt(backend: Backend) -> None:
    store, user = backend.store, new_id()

    async def broken() -> Sequence[str]:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await store.rebuild(user, broken)
    assert await store.page(user, None, 10) is None
    await built(store, user, ids(2))
    assert len(await store.page(user, None, 10) or []) == 2


async def test_reads_keep_it_alive_and_idle_ones_expire(backend: Backend) -> None:
    store, user = backend.store, new_id()
    await built(store, user, ids(2))
    assert 0 < await backend.ttl_left(user) <= TTL
    if backend.kind == "memory":
        backend.clock.now += TTL - 1
        await store.add([user], new_id())  # fan-out does not extend the expiry
        assert await backend.ttl_left(user) == 1
        assert await store.page(user, None, 10) is not None  # a read restarts it
        assert await backend.ttl_left(user) == TTL
    else:
        await backend.client.expire(f"{backend.prefix}timeline:{user}", 5)  # type: ignore[union-attr]
        await store.add([user], new_id())
        assert await backend.ttl_left(user) <= 5
        assert await store.page(user, None, 10) is not None
        assert await backend.ttl_left(user) > 5
    await backend.expire(user)
    assert await store.page(user, None, 10) is None
    assert not await store.exists(user)
    await store.add([user], new_id())  # an expired timeline is not resurrected by fan-out
    assert await store.page(user, None, 10) is None
