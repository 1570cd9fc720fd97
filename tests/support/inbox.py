"""What a test receiver collected, and a wait for the next arrivals (woken by each, bounded)."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self) -> None:
        self.got: list[T] = []
        self._arrived = asyncio.Event()

    def add(self, item: T) -> None:
        self.got.append(item)
        self._arrived.set()

    async def received_within(self, seconds: float) -> bool:
        """Whether anything has arrived, waiting up to `seconds` for a first item."""
        if not self.got:
            self._arrived.clear()
            try:
                async with asyncio.timeout(seconds):
                    await self._arrived.wait()
            except TimeoutError:
                return False
        return True

    async def wait_for(self, count: int, timeout: float = 5) -> None:
        """Until `count` items have arrived in all."""
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                self._arrived.clear()
                await self._arrived.wait()
