"""Wire calls into the app: the CallActor kind with its ports, and the REST routes.

The Postgres adapters are built in `calls_ctx` after the database; the realtime ports
(broadcaster, session emitter) are the gateway's, and the chat area's adapters give the
directory. All are read at each activation, which happens only once the server serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from actors.actor import ActorContext
from actors.call import CallActor, CallPorts
from server.actors_wiring import ACTOR_SYSTEM
from server.calls.adapters import CallOutcomes, ChatCallDirectory
from server.chat.wiring import CHAT_ADAPTERS
from server.gateway.setup import BROADCASTER
from server.keys import DB_POOL, SETTINGS
from server.notifications.wiring import notification_sinks
from storage.postgres.calls import PostgresCallStore
from storage.postgres.chat_rooms import PostgresRoomDirectory
from storage.postgres.notifications import PostgresNotificationStore

CALL_STORE = web.AppKey("call_store", PostgresCallStore)
CALL_PORTS = web.AppKey("call_ports", CallPorts)


async def calls_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = app[DB_POOL]
    store = PostgresCallStore(pool)
    app[CALL_STORE] = store
    app[CALL_PORTS] = CallPorts(
        store=store,
        directory=ChatCallDirectory(PostgresRoomDirectory(pool), app[CHAT_ADAPTERS].store),
        broadcaster=app[BROADCASTER], sessions=app[BROADCASTER],
        effects=CallOutcomes(app[ACTOR_SYSTEM], PostgresNotificationStore(pool),
                             notification_sinks(app)))
    yield


def setup_calls(app: web.Application) -> None:
    """Call after setup_chat (the directory reads the chat area's adapters)."""
    from server.calls.routes import api  # the handlers look the store up under CALL_STORE

    settings = app[SETTINGS]

    def call_actor(key: str, context: ActorContext) -> CallActor:
        return CallActor(key, context, app[CALL_PORTS], ring_timeout=settings.call_ring_timeout,
                         max_participants=settings.max_call_participants)

    app[ACTOR_SYSTEM].register(CallActor, call_actor)
    api.register(app)
    app.cleanup_ctx.append(calls_ctx)
