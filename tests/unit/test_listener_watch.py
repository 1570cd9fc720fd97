"""The Socket.IO Redis listener is restarted when it ends (python-socketio #1581)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from server.gateway.listener_watch import listener_alive, watch_listener
from tests.support.polling import eventually


class EndingManager(AsyncPubSubManager):
    """A pub/sub manager whose listen ends at once, as python-socketio's may after Redis
    drops its subscriber."""

    def __init__(self) -> None:
        super().__init__(channel="test", write_only=True)
        self.listens = 0

    async def _publish(self, data: Any) -> None:
        return None

    async def _listen(self) -> AsyncIterator[Any]:
        self.listens += 1
        return
        yield  # an async generator that yields nothing


async def test_an_ended_listener_is_started_again() -> None:
    manager = EndingManager()
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    manager.thread = sio.start_background_task(manager._thread)
    watch = asyncio.ensure_future(watch_listener(sio, every=0.01))
    try:
        async def restarted() -> bool:
            return manager.listens >= 3

        await eventually(restarted, 5, "the watch to restart the ended listener twice")
    finally:
        watch.cancel()
        manager.thread.cancel()


async def test_without_a_pubsub_manager_there_is_nothing_to_watch() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert listener_alive(sio)
    await asyncio.wait_for(watch_listener(sio, every=0.01), 1)  # returns at once
