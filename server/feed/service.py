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
through the ranking it started on while the cache retains it. While the cache is down, each
process computes it at most once per FEED_POPULAR_TTL and keeps it in memory.

Degraded home (a circuit breaker, server.feed.breaker). Each home page read is one call
through the breaker. A call fails when a dependency does: the timeline store (even when the
page could still be served from Postgres alone, as it is then), or Postgres (the pulled
authors, the rebuild, the fallback read, hydration) being unavailable or timing out. Other
errors (a bug, a bad cursor) say nothing about the dependencies and do not count.
FEED_BREAKER_FAILURES failures in a row open the breaker; while open, and when a call fails,
the page comes from the popular ranking instead, marked `degraded` (a HomeFeed field; the
route adds the `Hubbub-Degraded: feed` header). After FEED_BREAKER_COOLDOWN_SECONDS one trial
call goes through: its success closes the breaker, its failure opens it again. A degraded
page's cursor is a popular cursor, which `home` pages on through the ranking. The ranking
comes from the cache, else is computed, else is the last one this process saw; without any,
the answer is 503 `unavailable` with Retry-After. The breaker is per process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

import asyncpg
import msgspec

from protocols.common import Page, PageQuery
from protocols.feed import HomeFeed, Ranking
from protocols.ids import new_id
from protocols.posts import Post
from server.faults import ServiceUnavailable, unavailable_cause
from server.feed.breaker import CircuitBreaker
from server.feed.merge import authors_of, merge_newest, visible
from server.feed.ports import FeedSource, PostHydrator, RankingCache, TimelineStore
from server.http.cursors import CursorId, decode_cursor, encode_cursor
from server.http.problems import BadRequest
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
    popular_ttl: float = 30.0  # FEED_POPULAR_TTL: how long a ranking computed uncached is kept


class FeedObserver(Protocol):
    def fallback(self, reason: str) -> None:
        """A home page was answered from the popular ranking: `open` (the breaker refused
        the call), `failed` (the call failed) or `cursor` (a degraded listing paged on)."""
        ...


class _NoObserver:
    def fallback(self, reason: str) -> None:
        pass


def dependency_failure(exc: BaseException) -> bool:
    """Whether `exc` says a store the home feed reads is failing (it counts against the
    breaker), rather than a bug or bad input."""
    if isinstance(exc, StorageError | asyncpg.QueryCanceledError):  # the last: a timeout
        return True
    return unavailable_cause(exc) is not None


class FeedService:
    def __init__(self, *, timelines: TimelineStore, source: FeedSource, posts: PostHydrator,
                 rankings: RankingCache, policy: FeedPolicy,
                 breaker: CircuitBreaker | None = None, observer: FeedObserver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timelines = timelines
        self._source = source
        self._posts = posts
        self._rankings = rankings
        self._policy = policy
        self.breaker = breaker if breaker is not None else CircuitBreaker(clock=clock)
        self._observer: FeedObserver = observer or _NoObserver()
        self._clock = clock
        self._ranking_lock = asyncio.Lock()
        # The last ranking this process got (from the cache or computed), and when: the
        # degraded feed's last resort, and the popular feed's cache while Redis is down.
        self._last_ranking: tuple[float, Ranking] | None = None

    # Home

    async def home(self, viewer_id: str, query: PageQuery) -> HomeFeed:
        """A page of the home feed, or (the breaker open, or the read failing) of the
        popular ranking marked degraded."""
        at = _home_cursor(query.cursor)
        if isinstance(at, tuple):  # a degraded page's cursor: go on through the ranking
            return await self._degraded(viewer_id, query.cursor, query.limit, "cursor")
        permit = self.breaker.permit()
        if permit is None:
            return await self._degraded(viewer_id, None, query.limit, "open")
        trouble: list[BaseException] = []  # failures the read survived (the timeline store)
        try:
            page = await self._home(viewer_id, at, query.limit, trouble)
        except Exception as exc:
            if not dependency_failure(exc):
                permit.release()
                raise
            permit.failure()
            log.warning("home feed read failed; answering from the popular ranking", extra={
                "error": f"{type(exc).__name__}: {exc}", "breaker": self.breaker.state.name})
            return await self._degraded(viewer_id, None, query.limit, "failed")
        except BaseException:
            permit.release()
            raise
        if trouble:
            permit.failure()
        else:
            permit.success()
        return page

    async def _home(self, viewer_id: str, before: str | None, limit: int,
                    trouble: list[BaseException]) -> HomeFeed:
        shown: list[Post] = []
        exhausted = False
        for _ in range(MAX_ROUNDS):
            ids = await self.candidates(viewer_id, before, limit + 1, trouble)
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
        return HomeFeed(items=items,
                        next_cursor=encode_cursor((next_key,)) if next_key else None)

    async def candidates(self, viewer_id: str, before: str | None, want: int,
                         trouble: list[BaseException] | None = None) -> list[str]:
        """The newest `want` home-feed post ids below `before`, before any filtering. A
        timeline store failure is survived (Postgres answers alone) and added to `trouble`."""
        timeline, pulled = await asyncio.gather(
            self._timeline_page(viewer_id, before, want, trouble),
            self._source.pulled(viewer_id, before, want, self._policy.push_threshold))
        if len(timeline) < want:
            # Below the timeline's head (or without one): the whole feed from Postgres, which
            # includes the pulled authors.
            return merge_newest([timeline, await self._source.home(viewer_id, before, want)],
                                want)
        return merge_newest([timeline, pulled], want)

    async def _timeline_page(self, viewer_id: str, before: str | None, want: int,
                             trouble: list[BaseException] | None) -> list[str]:
        try:
            page = await self._timelines.page(viewer_id, before, want)
            if page is None:
                await self.rebuild(viewer_id)
                page = await self._timelines.page(viewer_id, before, want)
        except StorageError as exc:
            # The feed still works from Postgres alone, only slower.
            log.warning("timeline store unavailable; reading the feed from Postgres",
                        extra={"error": str(exc)})
            if trouble is not None:
                trouble.append(exc)
            return []
        return page or []

    async def rebuild(self, user_id: str) -> None:
        """Build the user's timeline from Postgres now (it is rebuilt on read otherwise)."""
        async def seed() -> list[str]:
            return await self._source.timeline_seed(user_id, self._policy.timeline_length,
                                                    self._policy.push_threshold)

        await self._timelines.rebuild(user_id, seed)

    # Degraded home

    async def _degraded(self, viewer_id: str, cursor: str | None, limit: int,
                        reason: str) -> HomeFeed:
        """The popular ranking (from the top, or from a popular `cursor`) as a home page,
        marked degraded; 503 when there is no ranking to be had."""
        self._observer.fallback(reason)
        try:
            ranking, offset = await self._fallback_ranking(cursor)
            page = await self._popular_page(viewer_id, ranking, offset, limit)
        except Exception as exc:
            if not dependency_failure(exc):
                raise
            log.warning("home feed and popular ranking both unavailable",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            raise ServiceUnavailable("The home feed is temporarily unavailable") from exc
        return HomeFeed(items=page.items, next_cursor=page.next_cursor, degraded=True)

    async def _fallback_ranking(self, cursor: str | None) -> tuple[Ranking, int]:
        try:
            return await self._ranking_at(cursor)
        except Exception as exc:
            if self._last_ranking is None or not dependency_failure(exc):
                raise
            # Cache and database both failing: the last ranking seen here, however old.
            offset = decode_cursor(cursor, PopularKey)[1] if cursor else 0
            return self._last_ranking[1], offset

    # Popular

    async def popular(self, viewer_id: str, query: PageQuery) -> Page[Post]:
        ranking, offset = await self._ranking_at(query.cursor)
        return await self._popular_page(viewer_id, ranking, offset, query.limit)

    async def _popular_page(self, viewer_id: str, ranking: Ranking, offset: int,
                            limit: int) -> Page[Post]:
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
        ids: list[str] | None = None
        try:
            if (ranking := await self._rankings.current()) is None:
                async with self._ranking_lock:  # one computation per process at a time
                    if (ranking := await self._rankings.current()) is None:
                        ids = await self._compute_popular()
                        ranking = await self._rankings.store(ids)
        except StorageError as exc:
            log.warning("ranking cache unavailable; computing the popular feed uncached",
                        extra={"error": str(exc)})
            async with self._ranking_lock:
                last = self._last_ranking
                if last is not None and self._clock() - last[0] < self._policy.popular_ttl:
                    return last[1]  # computed (or cached) here a moment ago
                if ids is None:
                    ids = await self._compute_popular()
                ranking = Ranking(generation=new_id(), ids=ids)
        self._last_ranking = (self._clock(), ranking)
        return ranking

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


def _home_cursor(cursor: str | None) -> str | tuple[str, int] | None:
    """A home cursor's post id (None: the first page), or a degraded page's popular cursor
    as (generation, offset). Anything else is a 400 `invalid_cursor`."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, HomeKey)[0]
    except BadRequest:
        return decode_cursor(cursor, PopularKey)
