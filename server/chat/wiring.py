"""Wire chat into the app: the RoomActor kind, the REST routes, and the adapters behind them.

The RoomActor's own ports (store, hot history, notifier) are built in `chat_ctx`, after the
database and Redis; the realtime ones (broadcaster, presence, socket eviction) sit on the
gateway's state and are read at each activation, which happens only once the server serves.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from actors.actor import ActorContext
from actors.errors import AskTimeout
from actors.ports import HotHistory, MessageNotifier, RoomStore
from actors.room import RoomActor, RoomPorts
from actors.system import ActorSystem
from protocols.chat import Message
from protocols.room_messages import MembershipChanged, SendMessage
from server.actors_wiring import ACTOR_SYSTEM
from server.chat.live import SocketIORoomSockets
from server.chat.metrics import ChatCollector
from server.chat.service import ChatService
from server.gateway.setup import BROADCASTER, GATEWAY, SIO
from server.keys import DB_POOL, LIFECYCLE, SETTINGS
from server.metrics import METRICS
from server.resources import optional_redis
from storage.memory.chat_history import MemoryChatHistory
from storage.postgres.chat import PostgresMessageNotifier, PostgresRoomStore
from storage.postgres.chat_rooms import PostgresRoomDirectory
from storage.redis.chat_history import RedisChatHistory

log = logging.getLogger("hubbub.chat")
# Seconds the REST side waits for a room to take a message (as the gateway does).
SEND_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ChatAdapters:
    store: RoomStore
    history: HotHistory
    notifier: MessageNotifier


CHAT_ADAPTERS = web.AppKey("chat_adapters", ChatAdapters)
CHAT_SERVICE = web.AppKey("chat_service", ChatService)


class ActorRoomMessenger:
    """server.chat.service.RoomMessenger over the actor system."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    async def send(self, room_id: str, request: SendMessage) -> Message:
        return await self._system.ref(RoomActor, room_id).ask(request, timeout=SEND_TIMEOUT)

    async def members_changed(self, room_id: str, removed: list[str]) -> None:
        try:
            await self._system.ref(RoomActor, room_id).ask(
                MembershipChanged(removed_user_ids=removed), timeout=SEND_TIMEOUT)
        except AskTimeout:
            # Committed all the same; the room reloads when it gets to the message.
            log.warning("room %s was slow to reload its members", room_id)


async def chat_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = app[DB_POOL]
    client = optional_redis(app)
    history: HotHistory
    if client is not None:
        history = RedisChatHistory(client, settings.redis_key_prefix,
                                   max_messages=settings.chat_history_length,
                                   max_age=settings.chat_history_ttl)
        app[LIFECYCLE].adapters["chat_history"] = "redis"
    else:
        history = MemoryChatHistory(max_messages=settings.chat_history_length,
                                    max_age=settings.chat_history_ttl)
        app[LIFECYCLE].adapters["chat_history"] = "memory"
    store = PostgresRoomStore(pool)
    collector = ChatCollector(store.commits, history)
    app[METRICS].registry.register(collector)
    app[CHAT_ADAPTERS] = ChatAdapters(store=store, history=history,
                                      notifier=PostgresMessageNotifier(pool))
    app[CHAT_SERVICE] = ChatService(PostgresRoomDirectory(pool), store,
                                    ActorRoomMessenger(app[ACTOR_SYSTEM]))
    yield
    app[METRICS].registry.unregister(collector)
    await store.close()
    if isinstance(history, RedisChatHistory):
        await history.close()


def setup_chat(app: web.Application) -> None:
    """Call after setup_actors and setup_gateway (it reads their app keys)."""
    # Imported here: the route handlers look the service up under CHAT_SERVICE above.
    from server.chat.routes import api

    def room_actor(key: str, context: ActorContext) -> RoomActor:
        # Called at activation, after startup: every port exists by then.
        adapters = app[CHAT_ADAPTERS]
        gateway = app[GATEWAY]
        presence, sessions = gateway.presence, gateway.sessions_store
        assert presence is not None and sessions is not None, \
            "the gateway builds its presence store and session records at startup"
        return RoomActor(key, context, RoomPorts(
            store=adapters.store, history=adapters.history, broadcaster=app[BROADCASTER],
            presence=presence, notifier=adapters.notifier,
            sockets=SocketIORoomSockets(app[SIO], sessions)))

    app[ACTOR_SYSTEM].register(RoomActor, room_actor)
    api.register(app)
    app.cleanup_ctx.append(chat_ctx)
