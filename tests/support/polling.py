"""Wait for a condition by polling it against a deadline.

For conditions we cannot be told about (a port starting to listen or to refuse, a process
reaching a state): the interval is only how often we look; the deadline bounds the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_INTERVAL = 0.05


def wait_until(predicate: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


async def eventually(
    predicate: Callable[[], Awaitable[bool]], deadline_s: float, what: str
) -> None:
    end = time.monotonic() + deadline_s
    while not await predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


async def holds(predicate: Callable[[], Awaitable[bool]], duration_s: float, what: str) -> None:
    """Assert that `predicate` stays true for `duration_s` seconds, looking every interval
    (for "this must NOT happen within the window" checks, e.g. no offline within a grace
    period); fails as soon as it is false."""
    end = time.monotonic() + duration_s
    while True:
        if not await predicate():
            raise AssertionError(f"no longer true: {what}")
        if time.monotonic() > end:
            return
        await asyncio.sleep(POLL_INTERVAL)
