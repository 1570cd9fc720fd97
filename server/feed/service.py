"""Reading feeds: the hybrid home feed and the popular feed.

Home (`GET /v1/feed`). Candidates below the cursor come from up to three sources, merged
newest first and de-duplicated (server.feed.merge):

- the viewer's timeline in the TimelineStore: the pushed posts (own posts, and those of
  followed authors under the push threshold), rebuilt from Postgres when missing;
- `pulled`: posts of followed authors at or above the threshold, from Postgres;
- `home`: the whole feed from Postgres, only once the timeline runs out below the cursor
  (past its bounded head, or while the timeline store is unreachable).

Candidates are then hydrated for the viewer (deleted, blocked and muted dropped) and filtered
(authors the viewer no longer follows dropped). When filtering leaves the page short, the next
candidates are fetched, up to MAX_ROUNDS times. The cursor is the id of the last post shown:
pages are keyset on post ids, so posts arriving meanwhile (newer ids) never shift a page.

Popular (`GET /v1/feed/popular`). One ranking for everyone, computed in SQL at most once per
FEED_POPULAR_TTL seconds (per process under a lock; shared through the cache), then filtered
and hydrated per viewer. Its cursor is (ranking generation, offset): a reader keeps paging
through the ranking it started on while the cache retains it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec

from protocols.common import Page, PageQuery
from protocols.feed import Ranking
from protocols.ids import new_id
from protocols.posts import Post
from server.feed.merge import authors_of, merge_newest, visible
from server.feed.ports import FeedSource, PostHydrator, RankingCache, TimelineStore
from server.http.cursors import CursorId, decode_cursor, encode_cursor
from storage.errors import StorageError

log = logging.getLogger("hubbub.feed")

MAX_ROUNDS = 4  # candidate fetches per page when filtering keeps emptying it
HomeKey = tuple[CursorId]
PopularKey = tuple[CursorId, Annotated[int, msgspec.Meta(ge=0)]]


@dataclass(frozen=True, slots=True)
class FeedPolicy:
    push_threshold: int  # FEED_PUSH_THRESHOLD
    timeline_length: int  # FEED_TIMELINE_LENGTH
    popular_window_hours: int  # FEED_POPULAR_WINDOW_HOURS
    popular_size: int = 500  # posts kept in the popular ranking


class FeedService:
    def __init__(self, *, timelines: TimelineStore, source: FeedSource, posts: PostHydrator,
                 rankings: RankingCache, policy: FeedPolicy) -> None:
        self._timelines = timelines
        self._source = source
        self._posts = posts
        self._rankings = rankings
        self._policy = policy
        self._ranking_lock = asyncio.Lock()

    # Home

    async def home(self, viewer_id: str, query: PageQuery) -> Page[Post]:
        before = decode_cursor(query.cursor, HomeKey)[0] if query.cursor else None
        limit = query.limit
        shown: list[Post] = []
        exhausted = False
        for _ in range(MAX_ROUNDS):
            ids = await self.candidates(viewer_id, before, limit + 1)
            exhausted = len(ids) < limit + 1
            if ids:
                before = ids[-1]
                shown += await self._visible(viewer_id, ids, require_follow=True)
            if len(shown) > limit or exhausted:
                break
        items = shown[:limit]
        if len(shown) > limit:
            next_key: str | None = items[-1].id
        else:
            # Out of rounds: everything down to `before` was examined, resume below it.
            next_key = None if exhausted else before
        return Page(items=items, next_cursor=encode_cursor((next_key,)) if next_key else None)

    async def candidates(self, viewer_id: str, before: str | None, want: int) -> list[str]:
        """The newest `want` home-feed post ids below `before`, before any filtering."""
        timeline, pulled = await asyncio.gather(
            self._timeline_page(viewer_id, before, want),
            self._source.pulled(viewer_id, before, want, self._policy.push_threshold))
        if len(timeline) < want:
            # Below the timeline's head (or without one): the whole feed from Postgres, which
            # includes the pulled authors.
            return merge_newest([timeline, await self._source.home(viewer_id, before, want)],
                                want)
        return merge_newest([timeline, pulled], want)

    async def _timeline_page(self, viewer_id: str, before: str | None,
                             want: int) -> list[str]:
        try:
            page = await self._timelines.page(viewer_id, before, want)
            if page is None:
                await self.rebuild(viewer_id)
                page = await self._timelines.page(viewer_id, before, want)
        except StorageError as exc:
            # The feed still works from Postgres alone, only slower.
            log.warning("timeline store unavailable; reading the feed from Postgres",
                        extra={"error": str(exc)})
            return []
        return page or []

    async def rebuild(self, user_id: str) -> None:
        """Build the user's timeline from Postgres now (it is rebuilt on read otherwise)."""
        async def seed() -> list[str]:
            return await self._source.timeline_seed(user_id, self._policy.timeline_length,
                                                    self._policy.push_threshold)

        await self._timelines.rebuild(user_id, seed)

    # Popular

    async def popular(self, viewer_id: str, query: PageQuery) -> Page[Post]:
        ranking, offset = await self._ranking_at(query.cursor)
        limit = query.limit
        ids = ranking.ids
        shown: list[tuple[int, Post]] = []
        position = offset
        for _ in range(MAX_ROUNDS):
            chunk = ids[position:position + limit + 1]
            if not chunk:
                break
            at = {post_id: position + i for i, post_id in enumerate(chunk)}
            position += len(chunk)
            shown += [(at[post.id], post)
                      for post in await self._visible(viewer_id, chunk, require_follow=False)]
            if len(shown) > limit:
                break
        items = shown[:limit]
        if len(shown) > limit:
            next_offset: int | None = items[-1][0] + 1
        else:
            next_offset = position if position < len(ids) else None
        cursor = (encode_cursor((ranking.generation, next_offset))
                  if next_offset is not None else None)
        return Page(items=[post for _, post in items], next_cursor=cursor)

    async def _ranking_at(self, cursor: str | None) -> tuple[Ranking, int]:
        if cursor is None:
            return await self.ranking(), 0
        generation, offset = decode_cursor(cursor, PopularKey)
        # The ranking this cursor came from, or (once it is gone) the current one.
        try:
            kept = await self._rankings.get(generation)
        except StorageError:
            kept = None
        return kept or await self.ranking(), offset

    async def ranking(self) -> Ranking:
        """The current popular ranking, computed when the cache has none (or is down)."""
        try:
            if (ranking := await self._rankings.current()) is not None:
                return ranking
            async with self._ranking_lock:  # one computation per process at a time
                if (ranking := await self._rankings.current()) is not None:
                    return ranking
                ids = await self._compute_popular()
                return await self._rankings.store(ids)
        except StorageError as exc:
            log.warning("ranking cache unavailable; computing the popular feed uncached",
                        extra={"error": str(exc)})
            return Ranking(generation=new_id(), ids=await self._compute_popular())

    async def _compute_popular(self) -> list[str]:
        return await self._source.popular(self._policy.popular_window_hours,
                                          self._policy.popular_size)

    # Both

    async def _visible(self, viewer_id: str, ids: Sequence[str], *,
                       require_follow: bool) -> list[Post]:
        posts = await self._posts.get_many(ids, viewer_id, exclude_muted=True)
        if not posts:
            return []
        following, hidden = await self._source.relations(viewer_id, sorted(authors_of(posts)))
        return visible(posts, viewer_id, following=following, hidden=hidden,
                       require_follow=require_follow)
