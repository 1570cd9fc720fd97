"""The outbound queue of one Engine.IO socket, holding memory only while it holds packets.

python-engineio gives every socket an asyncio.Queue for its whole life: four deques (items,
getters, putters, and the `join` event's waiters) of about 0.6 KiB each even when empty, 3.2
KiB per connection in all (tracemalloc). Hubbub writes nearly every packet straight to the
transport (server/gateway/direct.py), so the queue is empty almost always: this one keeps its
items in a deque made on the first put and dropped when it empties, and its waiters in lists
made only when someone waits.

What python-engineio uses of asyncio.Queue, with its semantics: unbounded `put` /
`put_nowait`, `get` (waits; cancelling it, e.g. by a poll's timeout, loses nothing),
`get_nowait` (asyncio.QueueEmpty), `task_done` / `join`, `qsize`, `empty`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class SocketQueue:
    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._unfinished += 1
        self._wake_one_getter()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None  # an empty deque still holds its first block
        return item

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                self._forget(waiter)
                if self._items and not waiter.cancelled():
                    # Woken, then cancelled before taking the item: pass the turn on.
                    self._wake_one_getter()
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            joiner = asyncio.get_running_loop().create_future()
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(joiner)
            await joiner

    def _wake_one_getter(self) -> None:
        getters = self._getters
        while getters:
            waiter = getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        if not getters:
            self._getters = None

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        if self._getters and waiter in self._getters:
            self._getters.remove(waiter)
            if not self._getters:
                self._getters = None
