"""The home feed behind its circuit breaker (FeedService over in-memory ports, a hand-driven
clock): failing timelines or pull queries open it, pages then come from the popular ranking
marked degraded (and page on through it), the feed recovers by itself once the stores work
again, and with no ranking to be had either the answer is 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest
from prometheus_client import CollectorRegistry

from protocols.common import PageQuery
from protocols.feed import HomeFeed
from server.faults import ServiceUnavailable
from server.feed.breaker import BreakerState, CircuitBreaker
from server.feed.metrics import FeedMetrics
from server.feed.service import FeedPolicy, FeedService
from server.http.cursors import encode_cursor
from server.http.problems import BadRequest
from storage.errors import StorageError
from storage.memory.popular import MemoryRankingCache
from storage.memory.timelines import MemoryTimelineStore
from tests.support.manual_clock import ManualClock
from tests.unit.fakes_feed import FakeFeedSource, FakeHydrator, FeedWorld

THRESHOLD = 3
COOLDOWN = 10.0


class FlakyTimelines:
    """A MemoryTimelineStore whose backend can be switched off (every call raises
    StorageError, as the Redis adapter does when Redis is unreachable)."""

    def __init__(self, inner: MemoryTimelineStore) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., Awaitable[object]]:
        method = getattr(self.inner, name)

        async def call(*args: object, **kwargs: object) -> object:
            self.calls += 1
            if self.down:
                raise StorageError("timeline store unavailable: connection refused")
            return await method(*args, **kwargs)
        return call


class FlakySource(FakeFeedSource):
    """The feed's Postgres queries; `down` names the ones failing as when Postgres is
    unreachable (a ConnectionRefusedError, which server.faults counts as unavailable)."""

    def __init__(self, world: FeedWorld) -> None:
        super().__init__(world)
        self.down: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.down:
            raise ConnectionRefusedError(111, "Connection refused")

    async def pulled(self, user_id: str, before_id: str | None, limit: int,
                     push_threshold: int) -> list[str]:
        self._check("pulled")
        return await super().pulled(user_id, before_id, limit, push_threshold)

    async def home(self, user_id: str, before_id: str | None, limit: int) -> list[str]:
        self._check("home")
        return await super().home(user_id, before_id, limit)

    async def popular(self, window_hours: int, limit: int) -> list[str]:
        self._check("popular")
        return await super().popular(window_hours, limit)


class DownRankings:
    """A ranking cache whose Redis is unreachable."""

    async def current(self) -> None:
        raise StorageError("ranking cache unavailable")

    async def get(self, generation: str) -> None:
        raise StorageError("ranking cache unavailable")

    async def store(self, ids: Sequence[str]) -> None:
        raise StorageError("ranking cache unavailable")


class Kit:
    def __init__(self, *, rankings: object | None = None) -> None:
        self.world = FeedWorld()
        self.source = FlakySource(self.world)
        self.clock = ManualClock()
        self.timelines = FlakyTimelines(MemoryTimelineStore(length=50, ttl=1000,
                                                            clock=self.clock))
        self.registry = CollectorRegistry()
        self.metrics = FeedMetrics(self.registry)
        self.breaker = CircuitBreaker(failure_threshold=THRESHOLD, cooldown=COOLDOWN,
                                      clock=self.clock, listener=self.metrics.changed)
        self.metrics.watch(self.breaker)
        self.feed = FeedService(
            timelines=self.timelines,  # type: ignore[arg-type]
            source=self.source, posts=FakeHydrator(self.world),
            rankings=rankings or MemoryRankingCache(ttl=30, retain=300,  # type: ignore[arg-type]
                                                    clock=self.clock),
            policy=FeedPolicy(push_threshold=100, timeline_length=50,
                              popular_window_hours=48),
            breaker=self.breaker, observer=self.metrics, clock=self.clock)
        self.viewer, self.friend, self.stranger = (self.world.user() for _ in range(3))
        self.world.follow(self.viewer, self.friend)
        self.home_posts = [self.world.post(self.friend) for _ in range(3)]
        self.popular = [self.world.post(self.stranger) for _ in range(5)]
        self.source.popular_ids = self.popular

    async def read(self, limit: int = 20, cursor: str | None = None) -> HomeFeed:
        return await self.feed.home(self.viewer, PageQuery(limit=limit, cursor=cursor))

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        assert value is not None, name
        return value


def ids(page: HomeFeed) -> list[str]:
    return [p.id for p in page.items]


async def test_failing_timelines_open_the_breaker_then_popular_answers_and_it_recovers() -> None:
    kit = Kit()
    page = await kit.read()
    assert ids(page) == kit.home_posts[::-1] and not page.degraded
    kit.timelines.down = True
    # Closed: each read still answers from Postgres alone, but counts as a failure.
    for _ in range(THRESHOLD):
        page = await kit.read()
        assert ids(page) == kit.home_posts[::-1] and not page.degraded
    assert kit.breaker.state is BreakerState.OPEN
    assert kit.metric("hubbub_feed_breaker_state") == 1

    # Open: failing fast, without touching the timeline store, from the popular ranking.
    touched = kit.timelines.calls
    degraded = await kit.read(limit=2)
    assert degraded.degraded and ids(degraded) == kit.popular[:2]
    assert kit.timelines.calls == touched
    # Its cursor pages on through the ranking, still degraded.
    more = await kit.read(limit=2, cursor=degraded.next_cursor)
    assert more.degraded and ids(more) == kit.popular[2:4]
    rest = await kit.read(limit=2, cursor=more.next_cursor)
    assert ids(rest) == kit.popular[4:] and rest.next_cursor is None
    assert kit.metric("hubbub_feed_fallbacks_total", reason="open") == 1
    assert kit.metric("hubbub_feed_fallbacks_total", reason="cursor") == 2

    # Working again, but still open until the cooldown is over.
    kit.timelines.down = False
    kit.clock.now += COOLDOWN - 0.5
    assert (await kit.read()).degraded
    kit.clock.now += 0.5
    assert kit.metric("hubbub_feed_breaker_state") == 2  # half-open: the next read tries
    page = await kit.read()  # the trial
    assert not page.degraded and ids(page) == kit.home_posts[::-1]
    assert kit.breaker.state is BreakerState.CLOSED
    assert kit.metric("hubbub_feed_breaker_state") == 0
    assert kit.metric("hubbub_feed_breaker_transitions_total", state="open") == 1
    assert kit.metric("hubbub_feed_breaker_transitions_total", state="closed") == 1


async def test_a_failing_pull_path_answers_degraded_at_once_and_a_failed_trial_reopens() -> None:
    kit = Kit()
    await kit.read()  # the popular ranking is not computed by home reads...
    kit.source.down = {"pulled", "home"}
    for _ in range(THRESHOLD):
        page = await kit.read(limit=3)  # ...but by the first degraded one
        assert page.degraded and ids(page) == kit.popular[:3]
    assert kit.breaker.state is BreakerState.OPEN
    assert kit.metric("hubbub_feed_fallbacks_total", reason="failed") == THRESHOLD
    assert kit.metric("hubbub_feed_fallbacks_total", reason="open") == 0

    kit.clock.now += COOLDOWN
    page = await kit.read(limit=3)  # the trial fails: degraded, and open again
    assert page.degraded and kit.breaker.state is BreakerState.OPEN
    kit.clock.now += COOLDOWN - 1
    assert (await kit.read()).degraded
    kit.source.down = set()
    kit.clock.now += 1
    page = await kit.read()
    assert not page.degraded and ids(page) == kit.home_posts[::-1]


async def test_a_home_cursor_while_open_starts_the_popular_ranking_from_the_top() -> None:
    kit = Kit()
    first = await kit.read(limit=1)
    assert first.next_cursor is not None
    kit.timelines.down = True
    kit.source.down = {"home", "pulled"}
    for _ in range(THRESHOLD):
        await kit.read()
    page = await kit.read(limit=2, cursor=first.next_cursor)
    assert page.degraded and ids(page) == kit.popular[:2]


async def test_without_any_ranking_the_answer_is_503_with_retry_after() -> None:
    kit = Kit(rankings=DownRankings())
    kit.source.down = {"pulled", "home", "popular"}
    with pytest.raises(ServiceUnavailable) as caught:
        await kit.read()
    assert caught.value.status == 503 and caught.value.headers()["Retry-After"]
    assert kit.breaker.failures == 1  # the home read failed; the fallback found nothing


async def test_the_last_ranking_seen_is_the_last_resort() -> None:
    kit = Kit(rankings=DownRankings())
    assert [p.id for p in (await kit.feed.popular(kit.viewer, PageQuery())).items] \
        == kit.popular  # computed uncached, and remembered
    kit.source.down = {"pulled", "home", "popular"}
    page = await kit.read(limit=2)
    assert page.degraded and ids(page) == kit.popular[:2]
    more = await kit.read(limit=2, cursor=page.next_cursor)
    assert more.degraded and ids(more) == kit.popular[2:4]


async def test_errors_that_are_not_the_stores_failing_do_not_count() -> None:
    kit = Kit()
    for bad in ("nope", encode_cursor((1, 2))):
        with pytest.raises(BadRequest):
            await kit.read(cursor=bad)

    async def broken(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("a bug")

    kit.source.home = broken  # type: ignore[method-assign]  # read: the timeline runs short
    for _ in range(THRESHOLD):
        with pytest.raises(RuntimeError):
            await kit.read()
    assert kit.breaker.failures == 0 and kit.breaker.state is BreakerState.CLOSED
