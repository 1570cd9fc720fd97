"""ViewCounter: buffered counts reach the sink in one batch, survive a failed write, and are
written when the counter stops."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from server.posts.views import ViewCounter


class Sink:
    def __init__(self) -> None:
        self.batches: list[dict[str, int]] = []
        self.fail_next = False
        self.written = asyncio.Event()

    async def add_views(self, counts: Mapping[str, int]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database unavailable")
        self.batches.append(dict(counts))
        self.written.set()


async def test_flush_writes_one_batch_and_a_failed_write_is_retried() -> None:
    sink = Sink()
    views = ViewCounter(sink)
    for post in ("a", "a", "b"):
        views.record(post)
    assert views.unflushed("a") == 2
    sink.fail_next = True
    await views.flush()
    assert sink.batches == [] and views.unflushed("a") == 2
    views.record("a")
    await views.flush()
    assert sink.batches == [{"a": 3, "b": 1}] and views.unflushed("a") == 0
    await views.flush()  # nothing pending: no empty write
    assert len(sink.batches) == 1


async def test_background_task_flushes_and_stop_writes_the_rest() -> None:
    sink = Sink()
    views = ViewCounter(sink, interval=0.01)
    views.start()
    views.record("a")
    await asyncio.wait_for(sink.written.wait(), 5)
    assert sink.batches == [{"a": 1}]
    views.record("b")
    await views.stop()
    assert sink.batches[-1] == {"b": 1} and views.unflushed("b") == 0
