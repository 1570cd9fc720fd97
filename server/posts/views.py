"""Post view counting, kept cheap: reads bump an in-memory counter; a background task writes
the sums to Postgres about once a second in one statement, and once more at shutdown.

Each node buffers its own views, so many nodes add up correctly. A crash loses at most the
last interval's views, which is the price of not writing on every read. A failed flush keeps
its counts for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.posts.ports import ViewSink

log = logging.getLogger("hubbub.posts.views")


class ViewCounter:
    def __init__(self, sink: ViewSink, *, interval: float = 1.0) -> None:
        self._sink = sink
        self._also: list[ViewSink] = []  # see add_sink
        self._interval = interval
        self._pending: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def add_sink(self, sink: ViewSink) -> None:
        """Also hand every successfully written batch to `sink` (analytics' hourly buckets).
        Called only after the main write commits, so a retried batch is never seen twice;
        `sink` keeps what it fails to write itself, and its errors are only logged."""
        self._also.append(sink)

    def record(self, post_id: str) -> None:
        """Count one view of the post (written at the next flush)."""
        self._pending[post_id] = self._pending.get(post_id, 0) + 1

    def unflushed(self, post_id: str) -> int:
        """Views of the post this node has counted but not yet written."""
        return self._pending.get(post_id, 0) + self._in_flight.get(post_id, 0)

    async def flush(self) -> None:
        """Write every pending count; on failure they stay pending for the next flush."""
        if not self._pending or self._in_flight:
            return
        self._in_flight, self._pending = self._pending, {}
        try:
            await self._sink.add_views(self._in_flight)
        except Exception:
            log.warning("could not write %d post view counts; will retry",
                        len(self._in_flight), exc_info=True)
            for post_id, count in self._in_flight.items():
                self._pending[post_id] = self._pending.get(post_id, 0) + count
        else:
            # Written: no longer "unflushed" (metrics would count them twice meanwhile).
            written, self._in_flight = self._in_flight, {}
            for extra in self._also:
                try:
                    await extra.add_views(written)
                except Exception:
                    log.warning("a view sink failed", exc_info=True)
        finally:
            self._in_flight = {}

    async def _run(self) -> None:
        # Woken early by stop(), so shutdown never cancels a flush half-way through.
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="post-view-flush")

    async def stop(self) -> None:
        """Stop the background task once it has written what is left."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
