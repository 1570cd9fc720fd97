"""Keep python-socketio's Redis listener alive.

With REDIS_URL set, emits from other nodes reach this node's sockets only through the
Socket.IO Redis manager's listener task. That task can end for good (python-socketio #1581,
#826: after Redis drops the subscriber, emits silently stop reaching one instance), and
nothing would notice. The watch looks every few seconds and starts a new listener when the
old one has ended; `/ready` reports the gap meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

log = logging.getLogger("hubbub.gateway")
CHECK_EVERY = 2.0  # seconds


def listener_alive(sio: socketio.AsyncServer) -> bool:
    """False when the Redis manager's listener task has ended (always True without one)."""
    task = getattr(sio.manager, "thread", None)
    return not isinstance(task, asyncio.Task) or not task.done()


async def watch_listener(sio: socketio.AsyncServer, every: float = CHECK_EVERY) -> None:
    manager = sio.manager
    if not isinstance(manager, AsyncPubSubManager):
        return  # one process: nothing to listen to
    while True:
        await asyncio.sleep(every)
        if listener_alive(sio):
            continue
        task = manager.thread
        reason = task.exception() if not task.cancelled() else "cancelled"
        log.error("the Socket.IO Redis listener ended (%s); starting a new one", reason)
        manager.thread = sio.start_background_task(manager._thread)
