"""Media rows, post claims and Idempotency-Key storage against real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from protocols.ids import new_id
from protocols.media_records import MediaRecord
from server.http.idempotency import Idempotency, fingerprint
from server.http.problems import ProblemError
from server.media.service import MediaService
from storage.postgres.media import PostgresMediaStore
from tests.support.images import png
from tests.support.polling import eventually
from tests.unit.fakes_media import MemoryBlobStore

pytestmark = pytest.mark.integration


async def add_user(pool: asyncpg.Pool) -> str:
    user_id, name = new_id(), f"m_{uuid.uuid4().hex[:10]}"
    await pool.execute("INSERT INTO users (id, username, email, password_hash) "
                       "VALUES ($1, $2, $3, 'x')", user_id, name, f"{name}@example.test")
    return user_id


async def add_post(pool: asyncpg.Pool, author_id: str) -> str:
    post_id = new_id()
    await pool.execute("INSERT INTO posts (id, author_id, text) VALUES ($1, $2, 'hi')",
                       post_id, author_id)
    return post_id


def record(owner_id: str, status: str = "ready") -> MediaRecord:
    media_id = new_id()
    return MediaRecord(id=media_id, owner_id=owner_id, status=status,  # type: ignore[arg-type]
                       content_type="image/png", size=10,
                       width=4 if status == "ready" else None,
                       height=3 if status == "ready" else None,
                       storage_key=f"{media_id}/original.png",
                       thumb_key=f"{media_id}/thumb.webp" if status == "ready" else None,
                       created_at=datetime.now(UTC))


async def test_rows_round_trip_and_pending_turns_ready_once(db_pool: asyncpg.Pool) -> None:
    store = PostgresMediaStore(db_pool)
    owner = await add_user(db_pool)
    ready, pending = record(owner), record(owner, "pending")
    await store.insert(ready)
    async with db_pool.acquire() as conn, conn.transaction():
        await store.insert(pending, conn=conn)
    got = await store.get(ready.id)
    assert got is not None and got.id == ready.id and got.status == "ready"
    assert (got.width, got.thumb_key, got.post_id) == (4, ready.thumb_key, None)
    assert await store.get(new_id()) is None and await store.get("not-an-id") is None
    assert {r.id for r in await store.get_many([pending.id, "junk", ready.id, new_id()])} == {
        ready.id, pending.id}

    results = await asyncio.gather(*(store.mark_ready(
        pending.id, content_type="image/webp", size=99, width=7, height=8,
        storage_key=f"{pending.id}/original.webp", thumb_key=f"{pending.id}/thumb.webp")
        for _ in range(5)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].status == "ready" and winners[0].size == 99
    assert await store.delete_pending(pending.id) is False  # ready now: kept
    gone = record(owner, "pending")
    await store.insert(gone)
    assert await store.delete_pending(gone.id) is True and await store.get(gone.id) is None


async def test_claim_attaches_in_order_and_refuses_inside_the_transaction(
        db_pool: asyncpg.Pool) -> None:
    service = MediaService(blobs=MemoryBlobStore(), store=PostgresMediaStore(db_pool))
    owner, other = await add_user(db_pool), await add_user(db_pool)
    media = [await service.upload(owner, png(10 + i, 10)) for i in range(3)]
    post = await add_post(db_pool, owner)
    order = [media[1].id, media[2].id, media[0].id]
    async with db_pool.acquire() as conn, conn.transaction():
        await service.claim_for_post(conn, owner, order, post)
    found = await service.media_for_posts([post, new_id(), "junk"])
    assert list(found) == [post] and [m.id for m in found[post]] == order
    assert found[post][0].url.startswith("memory://get/")

    second = await add_post(db_pool, owner)
    theirs = await service.upload(other, png())
    for ids in ([theirs.id], [media[0].id]):  # someone else's; already attached
        with pytest.raises(ProblemError) as caught:
            async with db_pool.acquire() as conn, conn.transaction():
                await service.claim_for_post(conn, owner, ids, second)
        assert (caught.value.status, caught.value.code) == (422, "invalid_media")
    assert await service.media_for_posts([second]) == {}


async def test_concurrent_claims_of_one_upload_attach_it_once(db_pool: asyncpg.Pool) -> None:
    service = MediaService(blobs=MemoryBlobStore(), store=PostgresMediaStore(db_pool))
    owner = await add_user(db_pool)
    media = await service.upload(owner, png())
    posts = [await add_post(db_pool, owner) for _ in range(6)]

    async def claim(post_id: str) -> str:
        try:
            async with db_pool.acquire() as conn, conn.transaction():
                await service.claim_for_post(conn, owner, [media.id], post_id)
        except ProblemError as error:
            return error.code
        return "claimed"

    outcomes = await asyncio.gather(*(claim(p) for p in posts))
    assert sorted(outcomes) == ["claimed"] + ["invalid_media"] * 5
    found = await service.media_for_posts(posts)
    assert [m.id for items in found.values() for m in items] == [media.id]


async def test_abandoned_presigned_uploads_are_swept(db_pool: asyncpg.Pool) -> None:
    blobs = MemoryBlobStore()
    service = MediaService(blobs=blobs, store=PostgresMediaStore(db_pool), upload_ttl=60)
    owner = await add_user(db_pool)
    old, recent = record(owner, "pending"), record(owner, "pending")
    for row in (old, recent):
        await PostgresMediaStore(db_pool).insert(row)
        await blobs.put(row.storage_key, b"unverified", "image/png")
    ready = await service.upload(owner, png())
    await db_pool.execute("UPDATE media SET created_at = now() - interval '2 hours' "
                          "WHERE id = ANY($1::uuid[])", [old.id, ready.id])
    assert await service.sweep_abandoned() >= 1
    assert await PostgresMediaStore(db_pool).get(old.id) is None
    assert await blobs.head(old.storage_key) is None
    for kept in (recent.id, ready.id):  # too young; not pending
        assert await PostgresMediaStore(db_pool).get(kept) is not None
    assert await blobs.head(recent.storage_key) is not None


async def test_upload_many_writes_all_rows_or_none(db_pool: asyncpg.Pool) -> None:
    blobs = MemoryBlobStore()
    service = MediaService(blobs=blobs, store=PostgresMediaStore(db_pool))
    owner = await add_user(db_pool)
    media = await service.upload_many(owner, [png(5, 5), png(6, 5)])
    assert [m.width for m in media] == [5, 6] and await count_media(db_pool, owner) == 2
    # A row that cannot be written (its id exists) fails the batch: no row, no blob remains.
    prepared = await service.prepare_many(owner, [png(7, 5), png(8, 5)])
    clash = [prepared[0], type(prepared[1])(id=media[0].id, owner_id=owner,
                                            image=prepared[1].image,
                                            storage_key=prepared[1].storage_key,
                                            thumb_key=prepared[1].thumb_key)]
    with pytest.raises(asyncpg.UniqueViolationError):
        await service.commit_many(clash)
    assert await count_media(db_pool, owner) == 2
    async with db_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await service.commit_many(prepared, conn=conn)
        await tx.rollback()  # the caller's transaction decides
    assert await count_media(db_pool, owner) == 2


# -- Idempotency-Key -----------------------------------------------------------------------

def keyed(pool: asyncpg.Pool, user_id: str, key: str, body: bytes = b"body",
          wait: float = 5.0) -> Idempotency:
    return Idempotency(pool, user_id=user_id, scope="test.create", key=key,
                       fingerprint=fingerprint(body), wait=wait)


async def insert_row(conn: asyncpg.Connection, owner: str) -> dict[str, str]:
    media_id = new_id()
    await conn.execute("INSERT INTO media (id, owner_id, status, content_type, size, "
                       "storage_key) VALUES ($1, $2, 'ready', 'image/png', 1, $3)",
                       media_id, owner, f"{media_id}/original.png")
    return {"id": media_id}


async def count_media(pool: asyncpg.Pool, owner: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM media WHERE owner_id = $1", owner)


async def test_a_replayed_key_returns_the_first_result_and_writes_nothing(
        db_pool: asyncpg.Pool) -> None:
    owner, key = await add_user(db_pool), uuid.uuid4().hex
    first = await keyed(db_pool, owner, key).run(201, lambda conn: insert_row(conn, owner))
    assert (first.status, first.replayed) == (201, False)
    again = await keyed(db_pool, owner, key).run(201, lambda conn: insert_row(conn, owner))
    assert (again.status, again.body, again.replayed) == (201, first.body, True)
    looked = await keyed(db_pool, owner, key).lookup()
    assert looked is not None and looked.body == first.body
    assert looked.response().headers["Idempotent-Replayed"] == "true"
    assert await count_media(db_pool, owner) == 1
    # Keys are per user: another user's identical key is a different request.
    someone = await add_user(db_pool)
    theirs = await keyed(db_pool, someone, key).run(201, lambda conn: insert_row(conn, someone))
    assert not theirs.replayed and theirs.body != first.body


async def test_a_key_reused_for_another_body_is_422(db_pool: asyncpg.Pool) -> None:
    owner, key = await add_user(db_pool), uuid.uuid4().hex
    await keyed(db_pool, owner, key, b"one").run(201, lambda conn: insert_row(conn, owner))
    for attempt in (keyed(db_pool, owner, key, b"two").lookup(),
                    keyed(db_pool, owner, key, b"two").run(
                        201, lambda conn: insert_row(conn, owner))):
        with pytest.raises(ProblemError) as caught:
            await attempt
        assert (caught.value.status, caught.value.code) == (422, "idempotency_key_reused")
    assert await count_media(db_pool, owner) == 1


async def test_concurrent_duplicates_wait_for_the_first_and_share_its_result(
        db_pool: asyncpg.Pool) -> None:
    owner, key = await add_user(db_pool), uuid.uuid4().hex
    claimed, release = asyncio.Event(), asyncio.Event()

    async def slow_write(conn: asyncpg.Connection) -> dict[str, str]:
        claimed.set()
        await release.wait()
        return await insert_row(conn, owner)

    first = asyncio.create_task(keyed(db_pool, owner, key).run(201, slow_write))
    await claimed.wait()
    others = [asyncio.create_task(keyed(db_pool, owner, key).run(
        201, lambda conn: insert_row(conn, owner))) for _ in range(4)]
    # The duplicates block on the first's uncommitted claim; let them queue, then finish it.
    await _until_waiting(db_pool, 4)
    release.set()
    results = await asyncio.gather(first, *others)
    assert {r.body["id"] for r in results} == {results[0].body["id"]}
    assert [r.replayed for r in results] == [False, True, True, True, True]
    assert await count_media(db_pool, owner) == 1


async def test_a_duplicate_past_the_wait_is_409_and_a_failed_write_keeps_nothing(
        db_pool: asyncpg.Pool) -> None:
    owner, key = await add_user(db_pool), uuid.uuid4().hex
    claimed, release = asyncio.Event(), asyncio.Event()

    async def stuck_then_fail(conn: asyncpg.Connection) -> dict[str, str]:
        claimed.set()  # write runs once the key is claimed
        await release.wait()
        raise RuntimeError("the write failed")

    first = asyncio.create_task(keyed(db_pool, owner, key).run(201, stuck_then_fail))
    await claimed.wait()
    with pytest.raises(ProblemError) as caught:
        await keyed(db_pool, owner, key, wait=0.2).run(201, lambda c: insert_row(c, owner))
    assert (caught.value.status, caught.value.code) == (409, "idempotency_in_progress")
    release.set()
    with pytest.raises(RuntimeError):
        await first
    # Nothing was stored: the retry does the work.
    retry = await keyed(db_pool, owner, key).run(201, lambda conn: insert_row(conn, owner))
    assert not retry.replayed and await count_media(db_pool, owner) == 1


async def test_without_a_key_run_is_a_plain_transaction(db_pool: asyncpg.Pool) -> None:
    owner = await add_user(db_pool)
    idem = Idempotency(db_pool, user_id=owner, scope="test.create", key=None,
                       fingerprint=b"")
    assert await idem.lookup() is None
    one = await idem.run(201, lambda conn: insert_row(conn, owner))
    two = await idem.run(201, lambda conn: insert_row(conn, owner))
    assert one.body != two.body and not two.replayed
    assert await count_media(db_pool, owner) == 2


async def _until_waiting(pool: asyncpg.Pool, sessions: int) -> None:
    """Until `sessions` backends wait on a lock (the duplicates queued behind the claim)."""
    async def queued() -> bool:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")
        return waiting >= sessions

    await eventually(queued, 10, f"{sessions} sessions to wait on the idempotency claim")
