"""An actor's bounded FIFO mailbox: asyncio.Queue's put / put_nowait / get_nowait, without its
weight.

An asyncio.Queue holds three deques and a dict from birth (about 1.5 KiB); every connected user
has a UserActor whose mailbox is empty nearly all the time, so that was 1.5 KiB per idle
connection (tracemalloc, 1,000 sockets). This one holds a deque only while it has messages and
a list of waiting senders only while it is full. The drain task reads it with get_nowait, so
there are no getters to wake.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    __slots__ = ("_items", "_maxsize", "_putters")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize  # 0 or less: unbounded
        self._items: deque[T] | None = None
        self._putters: deque[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self._maxsize <= self.qsize()

    def senders_waiting(self) -> int:
        """Senders blocked in `put` for room."""
        return len(self._putters) if self._putters else 0

    def put_nowait(self, item: T) -> None:
        if self.full():
            raise asyncio.QueueFull
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None
        self._wake_putter()
        return item

    async def put(self, item: T) -> None:
        """Wait for room (in arrival order), then put."""
        while self.full():
            if self._putters is None:
                self._putters = deque()
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                putter.cancel()
                if self._putters is not None and putter in self._putters:
                    self._putters.remove(putter)
                if not self.full() and not putter.cancelled():
                    self._wake_putter()  # we were woken but leave: pass the turn on
                raise
        self.put_nowait(item)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters:
            putter = putters.popleft()
            if not putter.done():
                putter.set_result(None)
                break
        if not putters:
            self._putters = None
