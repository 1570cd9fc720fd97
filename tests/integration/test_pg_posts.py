"""The Postgres post adapters against a real database: exact counters under concurrency, the
daily limit under concurrency, one outbox event per change and none per no-op, full-text
search, visibility, and hydration in a constant number of queries."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from protocols.ids import new_id
from protocols.post_records import CommentDraft, PostDraft, PostFilter
from server.posts.reader import PostReader
from storage.postgres.comments import PostgresCommentStore
from storage.postgres.likes import PostgresLikeStore
from storage.postgres.post_lists import PostgresPostIndex
from storage.postgres.post_rows import PostgresPostRows
from storage.postgres.posts import PostgresPostStore

pytestmark = pytest.mark.integration


async def add_user(pool: asyncpg.Pool, prefix: str = "u") -> str:
    user_id = new_id()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await pool.execute(
        "INSERT INTO users (id, username, email, password_hash, display_name)"
        " VALUES ($1, $2, $3, 'x', $4)", user_id, name, f"{name}@example.test", name.title())
    return user_id


async def username(pool: asyncpg.Pool, user_id: str) -> str:
    return await pool.fetchval("SELECT username FROM users WHERE id = $1", user_id)


async def create(store: PostgresPostStore, author: str, text: str = "hello", *,
                 limit: int = 1000, **kw: Any) -> str:
    draft = PostDraft(post_id=new_id(), author_id=author, text=text, **kw)
    result = await store.create(draft, daily_limit=limit)
    assert result.outcome == "created", result
    return draft.post_id


async def events(pool: asyncpg.Pool, key: str, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT envelope FROM outbox WHERE key = $1 AND ($2::text IS NULL OR type = $2)"
        " ORDER BY seq", key, kind)
    return [row["envelope"] for row in rows]


async def counter(pool: asyncpg.Pool, post_id: str, column: str) -> int:
    return await pool.fetchval(f"SELECT {column} FROM posts WHERE id = $1", post_id)


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> PostgresPostStore:
    return PostgresPostStore(db_pool)


@pytest.fixture
def likes(db_pool: asyncpg.Pool) -> PostgresLikeStore:
    return PostgresLikeStore(db_pool)


async def test_fifty_users_liking_at_once_count_exactly(
    db_pool: asyncpg.Pool, store: PostgresPostStore, likes: PostgresLikeStore,
) -> None:
    author = await add_user(db_pool)
    post_id = await create(store, author)
    fans = await asyncio.gather(*(add_user(db_pool, "fan") for _ in range(50)))
    results = await asyncio.gather(*(likes.like(post_id, fan) for fan in fans))
    assert {r.outcome for r in results} == {"changed"}
    assert sorted(r.like_count for r in results) == list(range(1, 51))
    assert await counter(db_pool, post_id, "like_count") == 50
    assert await db_pool.fetchval("SELECT count(*) FROM likes WHERE post_id = $1", post_id) == 50
    liked = await events(db_pool, post_id, "post.liked")
    assert len(liked) == 50 and {e["data"]["user_id"] for e in liked} == set(fans)
    assert {e["data"]["author_id"] for e in liked} == {author}


async def test_one_user_liking_twenty_times_at_once_likes_once(
    db_pool: asyncpg.Pool, store: PostgresPostStore, likes: PostgresLikeStore,
) -> None:
    author, fan = await add_user(db_pool), await add_user(db_pool, "fan")
    post_id = await create(store, author)
    results = await asyncio.gather(*(likes.like(post_id, fan) for _ in range(20)))
    assert sorted(r.outcome for r in results) == ["changed"] + ["unchanged"] * 19
    assert {r.like_count for r in results} == {1}
    assert len(await events(db_pool, post_id, "post.liked")) == 1
    results = await asyncio.gather(*(likes.unlike(post_id, fan) for _ in range(20)))
    assert sorted(r.outcome for r in results) == ["changed"] + ["unchanged"] * 19
    assert await counter(db_pool, post_id, "like_count") == 0
    assert len(await events(db_pool, post_id, "post.unliked")) == 1


async def test_likes_of_deleted_or_hidden_posts_are_refused(
    db_pool: asyncpg.Pool, store: PostgresPostStore, likes: PostgresLikeStore,
) -> None:
    author, fan = await add_user(db_pool), await add_user(db_pool, "fan")
    post_id = await create(store, author)
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          author, fan)
    assert (await likes.like(post_id, fan)).outcome == "not_found"
    assert await store.delete(post_id, author)
    assert (await likes.like(post_id, author)).outcome == "not_found"
    assert await events(db_pool, post_id, "post.liked") == []


async def test_daily_limit_never_overshoots_under_concurrency(
    db_pool: asyncpg.Pool, store: PostgresPostStore,
) -> None:
    author = await add_user(db_pool)
    drafts = [PostDraft(post_id=new_id(), author_id=author, text=f"p{i}") for i in range(12)]
    results = await asyncio.gather(*(store.create(d, daily_limit=5) for d in drafts))
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["created"] * 5 + ["daily_limit"] * 7
    assert all(0 < r.retry_after <= 24 * 3600 for r in results if r.outcome == "daily_limit")
    assert await db_pool.fetchval("SELECT count(*) FROM posts WHERE author_id = $1",
                                  author) == 5
    created = await db_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE type = 'post.created'"
        " AND envelope->'data'->>'author_id' = $1", author)
    assert created == 5
    # Deleting does not give the allowance back; posts older than a day do not count.
    first = next(d.post_id for d, r in zip(drafts, results, strict=True)
                 if r.outcome == "created")
    assert await store.delete(first, author)
    again = await store.create(PostDraft(post_id=new_id(), author_id=author, text="x"),
                               daily_limit=5)
    assert again.outcome == "daily_limit"
    await db_pool.execute("UPDATE posts SET created_at = now() - interval '25 hours'"
                          " WHERE id = $1", first)
    await create(store, author, limit=5)


async def test_create_writes_counters_mentions_and_one_event(
    db_pool: asyncpg.Pool, store: PostgresPostStore,
) -> None:
    ann, bob, carl, dan = [await add_user(db_pool, p) for p in ("ann", "bob", "carl", "dan")]
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          dan, ann)
    original = await create(store, bob, "original")
    names = [(await username(db_pool, u)).upper() for u in (carl, dan, ann)]
    text = " ".join(f"@{n}" for n in names) + " @nobody_xyz"
    reply = await create(store, ann, text, reply_to_id=original, quote_of_id=original,
                         mention_names=[n.lower() for n in [*names, "nobody_xyz"]])
    assert await counter(db_pool, original, "reply_count") == 1
    assert await counter(db_pool, original, "quote_count") == 1
    [event] = await events(db_pool, reply)
    assert event["type"] == "post.created" and event["actor_id"] == ann
    data = event["data"]
    assert data["reply_to_author_id"] == bob and data["quote_of_author_id"] == bob
    assert data["mentioned_user_ids"] == [carl]

    assert await store.delete(reply, ann)
    assert not await store.delete(reply, ann)  # a no-op: no second event
    assert await counter(db_pool, original, "reply_count") == 0
    assert await counter(db_pool, original, "quote_count") == 0
    assert [e["type"] for e in await events(db_pool, reply)] == ["post.created", "post.deleted"]


async def test_replies_to_hidden_or_deleted_posts_write_nothing(
    db_pool: asyncpg.Pool, store: PostgresPostStore,
) -> None:
    ann, bob = await add_user(db_pool), await add_user(db_pool)
    hidden = await create(store, bob)
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          bob, ann)
    draft = PostDraft(post_id=new_id(), author_id=ann, text="re", reply_to_id=hidden)
    assert (await store.create(draft, daily_limit=10)).outcome == "reply_not_found"
    draft = PostDraft(post_id=new_id(), author_id=ann, text="q", quote_of_id=new_id())
    assert (await store.create(draft, daily_limit=10)).outcome == "quote_not_found"
    assert await db_pool.fetchval("SELECT count(*) FROM posts WHERE author_id = $1", ann) == 0
    assert await counter(db_pool, hidden, "reply_count") == 0


async def test_repost_is_one_row_under_concurrency_and_undo_is_evented_once(
    db_pool: asyncpg.Pool, store: PostgresPostStore,
) -> None:
    author, fan = await add_user(db_pool), await add_user(db_pool, "fan")
    original = await create(store, author)
    results = await asyncio.gather(*(store.repost(original, fan) for _ in range(10)))
    assert sorted(r.outcome for r in results) == ["created"] + ["existing"] * 9
    assert len({r.repost_id for r in results}) == 1
    assert await counter(db_pool, original, "repost_count") == 1
    [event] = await events(db_pool, original, "post.reposted")
    assert event["data"]["repost_id"] == results[0].repost_id
    assert event["data"]["original_author_id"] == author

    undone = await asyncio.gather(*(store.unrepost(original, fan) for _ in range(5)))
    assert [u for u in undone if u is not None] == [results[0].repost_id]
    assert await counter(db_pool, original, "repost_count") == 0
    assert len(await events(db_pool, results[0].repost_id or "", "post.deleted")) == 1
    again = await store.repost(original, fan)
    assert again.outcome == "created" and again.repost_id != results[0].repost_id


async def test_comments_count_and_event(db_pool: asyncpg.Pool, store: PostgresPostStore) -> None:
    comments = PostgresCommentStore(db_pool)
    author, fan, muted = [await add_user(db_pool) for _ in range(3)]
    post_id = await create(store, author)
    name = await username(db_pool, author)
    for who in (fan, muted, fan):
        comment = await comments.add(CommentDraft(comment_id=new_id(), post_id=post_id,
                                                  author_id=who, text=f"hi @{name}",
                                                  mention_names=[name.lower()]))
        assert comment is not None and comment.author.id == who
    assert await counter(db_pool, post_id, "comment_count") == 3
    created = await events(db_pool, post_id, "comment.created")
    assert len(created) == 3 and created[0]["data"]["mentioned_user_ids"] == [author]
    await db_pool.execute("INSERT INTO mutes (muter_id, muted_id) VALUES ($1, $2)",
                          author, muted)
    first = await comments.page(post_id, author, limit=1, after=None)
    rest = await comments.page(post_id, author, limit=10, after=first[0].id)
    shown = [c.id for c in first + rest]
    assert len(shown) == 2 and shown == sorted(shown)
    assert {c.author.id for c in first + rest} == {fan}


async def test_full_text_search_and_filters(db_pool: asyncpg.Pool,
                                            store: PostgresPostStore) -> None:
    index = PostgresPostIndex(db_pool)
    author, viewer = await add_user(db_pool), await add_user(db_pool)
    tag = uuid.uuid4().hex[:8]
    cats = await create(store, author, f"Cats {tag} are lovely animals")
    dogs = await create(store, author, f"dogs {tag} are loud")
    await store.repost(cats, author)  # reposts are not listed

    async def search(**where: Any) -> list[str]:
        return await index.search(viewer, PostFilter(**where), limit=10, before=None)

    assert set(await search(q=tag)) == {cats, dogs}
    assert await search(q=f"{tag} cats") == [cats]
    assert await search(q=f'"{tag} are loud"') == [dogs]
    assert await search(q=f"{tag} -dogs") == [cats]
    assert await search(q=f"{tag} or nothing", author_id=author, has_media=False) in (
        [dogs, cats], [cats, dogs])
    assert await search(q=tag, has_media=True) == []
    for weird in ('"', "!!!", "(((", ":*", "\\", "' OR 1=1 --", "a & | ! <->", "ünïcødé",
                  "x" * 256):
        assert await search(q=weird) is not None  # no error, whatever it matches
    row = await db_pool.fetchrow("SELECT created_at FROM posts WHERE id = $1", dogs)
    assert await search(q=tag, since=row["created_at"]) == [dogs]
    assert await search(q=tag, until=row["created_at"]) == [cats]
    await db_pool.execute("INSERT INTO mutes (muter_id, muted_id) VALUES ($1, $2)",
                          viewer, author)
    assert await search(q=tag) == []
    assert len(await search(q=tag, author_id=author)) == 2


class CountingPool:
    """The pool's read methods, counting round trips."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.queries = 0

    async def fetch(self, *args: Any) -> list[asyncpg.Record]:
        self.queries += 1
        return await self.pool.fetch(*args)


async def test_hydration_takes_one_query_whatever_the_page_size(
    db_pool: asyncpg.Pool, store: PostgresPostStore,
) -> None:
    counting = CountingPool(db_pool)
    reader = PostReader(PostgresPostRows(counting))  # type: ignore[arg-type]
    author, fan = await add_user(db_pool), await add_user(db_pool)
    quoted = await create(store, author, "quoted")
    quote = await create(store, author, "quote", quote_of_id=quoted)
    reposted = await store.repost(quote, fan)
    plain = [await create(store, author, f"p{i}") for i in range(40)]
    await PostgresLikeStore(db_pool).like(plain[0], fan)

    single = await reader.get_many([plain[0]], fan)
    assert counting.queries == 1 and single[0].liked_by_me and single[0].like_count == 1
    counting.queries = 0
    ids = [reposted.repost_id or "", *plain, quote]
    page = await reader.get_many(ids, fan)
    assert counting.queries == 1
    assert [p.id for p in page] == ids
    wrapper = page[0]
    assert wrapper.repost_of is not None and wrapper.repost_of.id == quote
    assert wrapper.repost_of.quote_of is not None and wrapper.repost_of.quote_of.id == quoted
    assert wrapper.reposted_by_me and wrapper.repost_count == 1
    assert page[-1].quote_of is not None and page[-1].quote_of.text == "quoted"

    await store.delete(quoted, author)
    await db_pool.execute("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)",
                          author, fan)
    assert await reader.get_many(ids, fan) == []
    after_block = await reader.get_many([quote], None)
    assert after_block[0].quote_of is None  # deleted quoted post shows as null


async def test_views_and_user_stats(db_pool: asyncpg.Pool, store: PostgresPostStore) -> None:
    author, fan = await add_user(db_pool), await add_user(db_pool)
    post_id = await create(store, author)
    other = await create(store, author)
    await store.add_views({post_id: 3, other: 1, new_id(): 5})
    await store.add_views({post_id: 2})
    metrics = await store.metrics(post_id)
    assert metrics is not None and metrics.views == 5
    await PostgresLikeStore(db_pool).like(post_id, fan)
    await store.repost(post_id, fan)
    await store.delete(other, author)
    stats = await PostgresPostIndex(db_pool).user_stats(author)
    assert stats is not None
    assert (stats.posts, stats.reposts, stats.likes_received, stats.reposts_received) == (
        1, 0, 1, 1)
    fan_stats = await PostgresPostIndex(db_pool).user_stats(fan)
    assert fan_stats is not None and (fan_stats.reposts, fan_stats.likes_given) == (1, 1)
    assert await PostgresPostIndex(db_pool).user_stats(new_id()) is None
