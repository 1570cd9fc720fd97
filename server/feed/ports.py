"""The ports the feed needs: timelines, the feed's queries over Postgres, post hydration and
the popular-ranking cache.

Adapters: storage/redis/timelines.py and storage/memory/timelines.py (TimelineStore),
storage/postgres/feed.py (FeedSource, FollowerSource), storage/redis/popular.py and
storage/memory/popular.py (RankingCache); the posts area's PostReader is a PostHydrator.

Post ids are UUIDv7 strings: their lexicographic order is their creation order, so "newest
first" is "greatest id first" everywhere, and a page resumes "strictly before" an id.

Which posts a home feed holds (the same rule in every source, so they can be merged):
the user's own posts, replies included, plus the posts and reposts of everyone the user
follows, replies excluded (a reply belongs to its conversation, not to followers' feeds).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from protocols.feed import Ranking
from protocols.posts import Post


class TimelineStore(Protocol):
    """Each user's home timeline: the newest `length` post ids pushed to it, a cache over
    Postgres. A timeline is built (rebuilt from Postgres), live (built, or being rebuilt) or
    missing (never built, or expired: one unread for `ttl` seconds is dropped)."""

    async def add(self, user_ids: Sequence[str], post_id: str) -> None:
        """Insert post_id into the timeline of each of user_ids that is live; skip missing
        ones (a rebuild reads Postgres, which already has the post). Idempotent. Keeps the
        newest `length` ids, dropping older ones. Does not extend the expiry: only reads keep
        a timeline alive. Batched: one round trip for the whole list."""
        ...

    async def extend(self, user_id: str, post_ids: Sequence[str]) -> None:
        """Insert many ids into one user's timeline if it is live; otherwise as add()."""
        ...

    async def remove(self, user_id: str, post_ids: Sequence[str]) -> None:
        """Drop these ids from the user's timeline where present. Idempotent."""
        ...

    async def page(self, user_id: str, before_id: str | None, limit: int) -> list[str] | None:
        """Up to `limit` ids strictly older than before_id (from the newest when None),
        newest first. None when the timeline is not built: the caller rebuilds it. Restarts
        the expiry (reading keeps a timeline alive)."""
        ...

    async def exists(self, user_id: str) -> bool:
        """True when the timeline is built, i.e. page() would not return None."""
        ...

    async def rebuild(self, user_id: str,
                      load: Callable[[], Awaitable[Sequence[str]]]) -> None:
        """Build the timeline from `load()` (the newest ids, from the system of record).

        Marks the timeline live BEFORE calling load, so ids added meanwhile land and are
        kept (merged with what load returns, never overwritten): a post committed after
        load's snapshot is pushed into it, one committed before is in the snapshot. Then
        marks it built, trims it to `length` and starts its expiry. If load raises, the
        timeline stays unbuilt and the next read rebuilds again."""
        ...


class FeedSource(Protocol):
    """The feed's reads from the system of record. Every list is of live (not deleted) post
    ids, newest first, at most `limit` long, and follows the home-feed rule above."""

    async def timeline_seed(self, user_id: str, limit: int, push_threshold: int) -> list[str]:
        """What a rebuilt timeline holds: the user's own posts and those of followed authors
        with fewer than push_threshold followers (the pushed ones)."""
        ...

    async def pulled(self, user_id: str, before_id: str | None, limit: int,
                     push_threshold: int) -> list[str]:
        """Posts older than before_id by followed authors with push_threshold followers or
        more (never pushed: merged at read time)."""
        ...

    async def home(self, user_id: str, before_id: str | None, limit: int) -> list[str]:
        """The whole home feed older than before_id straight from Postgres: the own posts and
        every followed author's. Read past the end of the bounded timeline."""
        ...

    async def relations(self, viewer_id: str,
                        author_ids: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
        """(following, hidden): which of author_ids the viewer follows, and which are hidden
        from the viewer (a block either way, or the viewer mutes them)."""
        ...

    async def popular(self, window_hours: int, limit: int) -> list[str]:
        """The `limit` top posts by engagement over the last window_hours (likes 1, comments
        2, reposts 3, quotes 3, each weighted by its recency), best first. Replies and
        reposts are not ranked themselves (a repost counts for its original)."""
        ...


class FollowerSource(Protocol):
    """What fan-out needs to know about an author."""

    async def follower_count(self, user_id: str) -> int | None:
        """The user's follower count; None when the user does not exist."""
        ...

    def followers(self, user_id: str, batch: int) -> AsyncIterator[list[str]]:
        """Every follower id of the user, in batches of at most `batch`, each batch one
        keyset-paginated query (no transaction held between batches). Follows made or
        removed during the walk may or may not be seen."""
        ...

    async def recent_posts(self, author_id: str, limit: int) -> list[str]:
        """The author's newest posts that go to followers' feeds (not replies), newest
        first: what a new follower's timeline is backfilled with."""
        ...


class PostHydrator(Protocol):
    """Post hydration, owned by the posts area (server.posts.reader.PostReader)."""

    async def get_many(self, post_ids: Sequence[str], viewer_id: str | None, *,
                       exclude_muted: bool = False) -> list[Post]:
        """The posts with these ids as the viewer sees them (counters, liked_by_me, ...), in
        the order given, leaving out deleted ones, any hidden from the viewer by a block and
        reposts of those; with exclude_muted, also posts by (and reposts of) muted authors."""
        ...


class RankingCache(Protocol):
    """The popular ranking, computed once per `ttl` seconds for all nodes and viewers."""

    async def current(self) -> Ranking | None:
        """The ranking stored less than `ttl` seconds ago, or None: compute and store one."""
        ...

    async def get(self, generation: str) -> Ranking | None:
        """A ranking by generation, while retained (`retain` seconds, longer than `ttl`), so
        a reader paging through it sees one consistent order; None once gone."""
        ...

    async def store(self, ids: Sequence[str]) -> Ranking:
        """Store a freshly computed ranking as the current one, under a new generation."""
        ...
