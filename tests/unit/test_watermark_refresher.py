"""WatermarkRefresher with fakes and movable clocks, no I/O: what one pass reads, loads and
marks, and that its loop survives failures and stops when cancelled. The real Redis and
Postgres sides: tests/integration/test_token_watermarks.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.auth import watermark_refresher
from server.auth.watermark_refresher import SKEW_MARGIN, WatermarkRefresher
from storage.errors import StorageError
from tests.unit.fakes_auth import FakeClock

NOW = 1_700_000_000.0
TTL = 900


class FakeRecent:
    """RecentWatermarks over a dict; each read may first move the monotonic clock."""

    def __init__(self, rows: dict[str, int], monotonic: FakeClock | None = None,
                 read_takes: float = 0.0) -> None:
        self.rows = rows
        self.calls: list[tuple[int, int]] = []
        self.failures = 0  # reads that fail before one succeeds
        self.monotonic = monotonic
        self.read_takes = read_takes

    async def recent(self, since: int, limit: int) -> list[tuple[str, int]]:
        self.calls.append((since, limit))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        if self.monotonic is not None:
            self.monotonic.advance(self.read_takes)
        return [(u, w) for u, w in self.rows.items() if w > since][:limit]


class FakeCache:
    """CompletableWatermarkCache noting what it is asked; marks complete within 40 s."""

    def __init__(self) -> None:
        self.loaded: list[tuple[str, int]] = []
        self.marked: list[float] = []
        self.failures = 0  # loads that fail (Redis away) before one succeeds

    async def load(self, watermarks: Sequence[tuple[str, int]]) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageError("cache down")
        self.loaded.extend(watermarks)

    async def mark_complete(self, elapsed: float) -> bool:
        if elapsed >= 40:
            return False
        self.marked.append(elapsed)
        return True


def _refresher(store: FakeRecent, cache: FakeCache, monotonic: FakeClock,
               period: float = 20.0) -> WatermarkRefresher:
    return WatermarkRefresher(store, cache, access_token_ttl=TTL, period=period,
                              clock=FakeClock(NOW), monotonic=monotonic)


async def test_a_pass_loads_what_still_matters_then_marks() -> None:
    monotonic = FakeClock(0.0)
    store = FakeRecent({"ann": int(NOW) - 10, "old": int(NOW) - TTL - SKEW_MARGIN},
                       monotonic, read_takes=1.5)
    cache = FakeCache()
    assert await _refresher(store, cache, monotonic).refresh() is True
    # Looked back the token TTL and a margin for clock skew, one row past the cap.
    assert store.calls == [(int(NOW) - TTL - SKEW_MARGIN, watermark_refresher.MAX_RECENT + 1)]
    assert cache.loaded == [("ann", int(NOW) - 10)]
    assert cache.marked == [1.5]  # the marker's life counts from the start of the read


async def test_a_read_too_old_to_vouch_for_is_not_marked() -> None:
    monotonic = FakeClock(0.0)
    store = FakeRecent({"ann": int(NOW)}, monotonic, read_takes=41.0)
    cache = FakeCache()
    assert await _refresher(store, cache, monotonic).refresh() is False
    assert cache.loaded == [("ann", int(NOW))] and cache.marked == []


async def test_too_many_recent_watermarks_mark_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watermark_refresher, "MAX_RECENT", 2)
    store = FakeRecent({f"u{i}": int(NOW) for i in range(3)})
    cache = FakeCache()
    assert await _refresher(store, cache, FakeClock(0.0)).refresh() is False
    assert store.calls[0][1] == 3
    assert cache.loaded == [] and cache.marked == []


async def test_failures_are_logged_and_retried_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeRecent({"ann": int(NOW)})
    store.failures = 1  # Postgres away once, then Redis, then both back
    cache = FakeCache()
    cache.failures = 1
    marked = asyncio.Event()
    reads_until_marked: list[int] = []

    async def mark_complete(elapsed: float) -> bool:
        if not marked.is_set():  # the loop goes on (period 0) until the test cancels it
            reads_until_marked.append(len(store.calls))
            marked.set()
        return True

    cache.mark_complete = mark_complete  # type: ignore[method-assign]
    task = asyncio.create_task(_refresher(store, cache, FakeClock(0.0), period=0).run())
    await asyncio.wait_for(marked.wait(), 5)
    assert reads_until_marked == [3] and cache.loaded[0] == ("ann", int(NOW))
    assert sum("refresh failed" in r.message for r in caplog.records) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
