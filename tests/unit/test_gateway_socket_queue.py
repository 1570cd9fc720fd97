"""server/gateway/socket_queue.py: asyncio.Queue's behaviour as python-engineio uses it, with
no memory held while empty."""

from __future__ import annotations

import asyncio

import pytest

from server.gateway.direct import DirectEngineIO
from server.gateway.socket_queue import SocketQueue


async def test_items_come_out_in_order_and_the_storage_goes_when_empty() -> None:
    queue = SocketQueue()
    assert queue.empty() and queue.qsize() == 0 and queue._items is None
    await queue.put("a")
    queue.put_nowait("b")
    assert queue.qsize() == 2 and not queue.empty()
    assert await queue.get() == "a"
    assert queue.get_nowait() == "b"
    assert queue.empty() and queue._items is None
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_get_waits_for_a_put() -> None:
    queue = SocketQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # let it start waiting (not a synchronisation with another task)
    assert not getter.done() and queue._getters
    queue.put_nowait("x")
    assert await getter == "x"
    assert queue._getters is None


async def test_a_cancelled_get_loses_nothing() -> None:
    queue = SocketQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)  # python-engineio's poll timeout
    assert queue._getters is None
    queue.put_nowait("kept")
    assert await queue.get() == "kept"


async def test_a_woken_getter_cancelled_before_it_runs_passes_the_item_on() -> None:
    queue = SocketQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("only")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it takes the item
    assert await second == "only"
    assert first.cancelled()


async def test_join_waits_until_every_item_is_done() -> None:
    queue = SocketQueue()
    await queue.join()  # nothing queued: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joiner = asyncio.ensure_future(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joiner.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joiner, 1.0)
    with pytest.raises(ValueError):
        queue.task_done()


def test_engineio_sockets_get_this_queue() -> None:
    assert isinstance(DirectEngineIO(async_mode="aiohttp").create_queue(), SocketQueue)
