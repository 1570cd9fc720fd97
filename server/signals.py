"""Signals for the long-running commands (`hubbub serve`, `hubbub worker`): SIGTERM, SIGINT
and SIGHUP (a closed terminal) stop the process; `Stop` counts them, and work started before
the process is up runs only until the first one (`until_signal`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server.config import Settings
from server.startup import wait_for_endpoint

log = logging.getLogger("hubbub.signals")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stop:
    """Signals, counted; each is logged. The first starts the shutdown, any later one hurries
    it (skips the rest of the drain and of the wait for requests)."""

    def __init__(self) -> None:
        self._signalled = asyncio.Event()
        self.count = 0

    def __call__(self, sig: signal.Signals) -> None:
        self.count += 1
        log.info("received %s", sig.name, extra={"signal": sig.name, "count": self.count})
        self._signalled.set()

    async def _beyond(self, seen: int) -> None:
        while self.count <= seen:
            self._signalled.clear()
            await self._signalled.wait()

    async def wait(self) -> None:
        """Until the first signal."""
        await self._beyond(0)

    async def until(self, work: Coroutine[Any, Any, Any], timeout: float) -> bool:
        """Run `work` for at most `timeout` seconds, or until a second signal (at once when
        there was one already); True when it finished."""
        task = asyncio.ensure_future(work)
        hurry = asyncio.ensure_future(self._beyond(1))
        try:
            done, _ = await asyncio.wait({task, hurry}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, hurry):
                pending.cancel()
            await asyncio.gather(task, hurry, return_exceptions=True)
        return task in done


async def until_signal(stop: Stop, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` until it ends or the first signal comes (then cancel it); raises its
    failure."""
    task = asyncio.ensure_future(work)
    signalled = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, signalled, return_exceptions=True)
    if not task.cancelled():
        task.result()  # raises its failure


async def run_until_stopped(settings: Settings, *, checks: Callable[[], None],
                            run: Callable[[Settings, Stop], Awaitable[None]]) -> None:
    """A long-running command: `checks` (fail fast, before anything starts), wait for S3 when
    configured, then `run(settings, stop)`; signals are counted by `stop` throughout."""
    loop = asyncio.get_running_loop()
    stop = Stop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    try:
        checks()
        if settings.s3_endpoint_url:
            await until_signal(stop, wait_for_endpoint("S3_ENDPOINT_URL",
                                                       settings.s3_endpoint_url))
        if stop.count:
            return
        await run(settings, stop)
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
