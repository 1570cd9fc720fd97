"""The social graph `make bench-feed` seeds straight into Postgres with COPY."""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg

WORDS = ("sun", "rain", "coffee", "code", "music", "cats", "train", "book", "garden", "night",
         "city", "river", "bread", "chess", "film", "snow", "tea", "bike", "sea", "idea")


class GraphSize(Protocol):
    """How big a graph to seed (bench_feed.Options has these fields)."""

    users: int
    big_followers: int
    push_followers: int
    authors: int
    follows_per_user: int
    posts: int
    likes: int
    readers: int


@dataclass
class Graph:
    users: list[uuid.UUID]
    big: uuid.UUID
    push: uuid.UUID
    readers: list[uuid.UUID]


def uuid7(ms: int) -> uuid.UUID:
    """A UUIDv7 of the millisecond `ms` (the layout protocols.ids.new_id uses)."""
    rand = int.from_bytes(os.urandom(8), "big")
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | (rand & ((1 << 62) - 1)))


async def seed(conn: asyncpg.Connection, options: GraphSize, rng: random.Random) -> Graph:
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    users = [uuid.uuid4() for _ in range(options.users)]
    big, push = users[-1], users[-2]
    started = time.monotonic()
    await conn.copy_records_to_table(
        "users", columns=["id", "username", "email", "password_hash", "display_name"],
        records=[(u, f"b{i}", f"b{i}@bench.test", "!", f"Bench {i}")
                 for i, u in enumerate(users)])
    print(f"  users: {len(users):,} in {time.monotonic() - started:.1f}s", flush=True)

    # Regular authors: users after the push author's followers, so timelines mix both.
    authors = users[options.push_followers:options.push_followers + options.authors]
    started = time.monotonic()
    follows: set[tuple[uuid.UUID, uuid.UUID]] = set()
    follows |= {(u, big) for u in users[:options.big_followers]}
    follows |= {(u, push) for u in users[:options.push_followers]}
    for u in users[:-2]:
        for author in rng.sample(authors, options.follows_per_user):
            if author != u:
                follows.add((u, author))
    await conn.copy_records_to_table("follows", columns=["follower_id", "followee_id"],
                                     records=list(follows))
    await conn.execute("""
        UPDATE users u SET follower_count = c.followers
        FROM (SELECT followee_id, count(*) AS followers FROM follows GROUP BY followee_id) c
        WHERE u.id = c.followee_id""")
    await conn.execute("""
        UPDATE users u SET following_count = c.following
        FROM (SELECT follower_id, count(*) AS following FROM follows GROUP BY follower_id) c
        WHERE u.id = c.follower_id""")
    print(f"  follows: {len(follows):,} in {time.monotonic() - started:.1f}s", flush=True)

    # Posts over the last week, oldest first; the big author writes 2%, the push author 1%.
    started = time.monotonic()
    week_ms = 7 * 24 * 3600 * 1000
    stamps = sorted(rng.randrange(now_ms - week_ms, now_ms - 60_000)
                    for _ in range(options.posts))
    posts: list[tuple[Any, ...]] = []
    recent: list[uuid.UUID] = []
    for ms in stamps:
        roll = rng.random()
        author = big if roll < 0.02 else push if roll < 0.03 else rng.choice(authors)
        post_id = uuid7(ms)
        reply_to = posts[rng.randrange(len(posts))][0] if (
            posts and author not in (big, push) and rng.random() < 0.1) else None
        text = " ".join(rng.choice(WORDS) for _ in range(8))
        at = datetime.fromtimestamp(ms / 1000, UTC)
        posts.append((post_id, author, text, reply_to, at))
        if ms > now_ms - 2 * 24 * 3600 * 1000 and reply_to is None:
            recent.append(post_id)
    for start in range(0, len(posts), 20_000):  # a reply's parent is in an earlier chunk
        await conn.copy_records_to_table(
            "posts", columns=["id", "author_id", "text", "reply_to_id", "created_at"],
            records=posts[start:start + 20_000])
    print(f"  posts: {len(posts):,} in {time.monotonic() - started:.1f}s", flush=True)

    started = time.monotonic()
    likes: set[tuple[uuid.UUID, uuid.UUID]] = set()
    # Skewed: a few recent posts get most likes, so the popular ranking has a head.
    hot = recent[-max(1, len(recent) // 50):] if recent else []
    while recent and len(likes) < options.likes:
        pool = hot if rng.random() < 0.5 else recent
        likes.add((rng.choice(pool), rng.choice(users)))
    like_rows = [(p, u, now - timedelta(seconds=rng.randrange(0, 2 * 24 * 3600)))
                 for p, u in likes]
    await conn.copy_records_to_table("likes", columns=["post_id", "user_id", "created_at"],
                                     records=like_rows)
    await conn.execute("""
        UPDATE posts p SET like_count = c.likes
        FROM (SELECT post_id, count(*) AS likes FROM likes GROUP BY post_id) c
        WHERE p.id = c.post_id""")
    await conn.execute("ANALYZE")
    print(f"  likes: {len(likes):,} in {time.monotonic() - started:.1f}s", flush=True)
    readers = users[:min(options.readers, options.push_followers)]
    return Graph(users=users, big=big, push=push, readers=readers)
