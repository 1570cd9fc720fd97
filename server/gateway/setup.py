"""Attach the Socket.IO gateway to the aiohttp app.

- One python-socketio AsyncServer on the app's router (`/socket.io/`). With REDIS_URL set its
  client manager is the Socket.IO Redis manager on the channel `<REDIS_KEY_PREFIX>socketio`,
  so an emit to a room reaches that room's sockets on every node.
- One namespace object for "/" (GatewayNamespace) running the event pipeline.
- The UserActor kind, with its ports (presence store, broadcaster, unread counts, the
  session directory over the session records) built at startup, and the notifications
  area's live-delivery sink.
- The session records (Redis with REDIS_URL, memory otherwise) on `Gateway.sessions_store`,
  where the cluster wiring reaches them (`users_on`, `forget_node`), and a background sweep
  that keeps this node's records true to its sockets.

Startup happens in `gateway_ctx`, after the database, Redis and auth contexts. On shutdown
every socket is closed first (on_shutdown: open websockets would otherwise hold aiohttp's
handler drain for SHUTDOWN_TIMEOUT; each close tells the user's UserActor), then the context
stops the Socket.IO background work. The actor system (set up earlier) is stopped after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import socketio
from aiohttp import web
from redis.asyncio import Redis

from actors.actor import ActorContext
from actors.user import UserActor
from protocols.notifications import Notification
from protocols.posts import Post
from server import garbage_collector
from server.actors_wiring import ACTOR_SYSTEM
from server.feed.wiring import add_feed_listener
from server.gateway.broadcaster import SocketIOBroadcaster, room_of_key
from server.gateway.connections import Gateway
from server.gateway.endpoint import attach
from server.gateway.frames import FrameGuard, GatewayServer
from server.gateway.json_codec import GatewayPacket
from server.gateway.limits import MAX_PACKET_BYTES
from server.gateway.listener_watch import listener_alive, watch_listener
from server.gateway.manager import LocalManager, RedisManager
from server.gateway.metrics import SocketCollector, SocketMetrics
from server.gateway.namespace import GatewayNamespace
from server.gateway.push import push_feed_post, push_notification
from server.gateway.session import RecordedSessions, sweep_forever
from server.gateway.transport import CLOSE_TIMEOUT, OpenWebSockets, track_websockets
from server.http.cors import socketio_origins
from server.keys import AUTHENTICATOR, DB_POOL, LIFECYCLE, SETTINGS
from server.metrics import METRICS
from server.notifications.wiring import add_notification_sink
from server.posts.wiring import POST_READER
from server.ratelimit.wiring import spend
from server.resources import optional_redis
from storage.memory.presence import MemoryPresenceStore
from storage.memory.sessions import MemorySessionRecords
from storage.postgres.notifications import PostgresNotificationStore
from storage.postgres.visibility import PostgresPresenceVisibility
from storage.redis.presence import RedisPresenceStore
from storage.redis.room_channels import RedisRoomChannels
from storage.redis.sessions import RedisSessionRecords

log = logging.getLogger("hubbub.gateway")
SIO = web.AppKey("sio", socketio.AsyncServer)
GATEWAY = web.AppKey("gateway", Gateway)
BROADCASTER = web.AppKey("broadcaster", SocketIOBroadcaster)
SOCKET_METRICS = web.AppKey("socket_metrics", SocketMetrics)


def setup_gateway(app: web.Application) -> socketio.AsyncServer:
    settings = app[SETTINGS]
    # Managers that index each socket's rooms: a disconnect costs O(its rooms), not O(all
    # rooms of the namespace) (server/gateway/manager.py).
    manager: socketio.AsyncManager = LocalManager()
    if settings.redis_url:
        manager = RedisManager(settings.redis_url, channel=f"{settings.redis_key_prefix}socketio")
    # Logger objects rather than False: given False, each library fits its logger with a
    # plain-text stderr handler of its own (server/logs.py routes them to the JSON one).
    sio = GatewayServer(
        async_mode="aiohttp", client_manager=manager,
        cors_allowed_origins=socketio_origins(settings),
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
        max_http_buffer_size=MAX_PACKET_BYTES, serializer=GatewayPacket,
    )
    # Not sio.attach: our handler in front of Engine.IO's (server/gateway/endpoint.py).
    attach(app, sio.eio.handle_request, app[METRICS], spend)
    websockets = track_websockets(sio)
    gateway = Gateway(sio=sio, system=app[ACTOR_SYSTEM], node_id=settings.effective_node_id,
                      events_per_second=settings.socket_events_per_second,
                      event_burst=settings.socket_event_burst)
    sio.frame_guard = FrameGuard(
        lambda eio_sid: gateway.connections.get(sio.manager.sid_from_eio_sid(eio_sid, "/") or ""))
    # Events, acks and disconnects (server/gateway/metrics.py); the sockets, their bad frames
    # and outbound queues read at scrape time.
    registry = app[METRICS].registry
    lifecycle = app[LIFECYCLE]
    socket_metrics = SocketMetrics(registry, draining=lambda: lifecycle.draining)
    sio.register_namespace(GatewayNamespace(gateway, socket_metrics))
    broadcaster = SocketIOBroadcaster(sio)
    app[SIO] = sio
    app[GATEWAY] = gateway
    app[BROADCASTER] = broadcaster
    app[SOCKET_METRICS] = socket_metrics
    registry.register(SocketCollector(gateway, sio.frame_guard, sio.eio))

    def user_actor(key: str, context: ActorContext) -> UserActor:
        # Called at activation, after startup: the ports exist by then.
        assert gateway.presence is not None and gateway.sessions_store is not None
        return UserActor(key, context, presence=gateway.presence, broadcaster=broadcaster,
                         directory=RecordedSessions(gateway, gateway.sessions_store),
                         unread=gateway.unread, grace=settings.presence_grace_seconds)

    app[ACTOR_SYSTEM].register(UserActor, user_actor)
    _add_live_push(app, gateway)

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        client = optional_redis(app)
        if client is not None:
            gateway.presence = RedisPresenceStore(client, settings.redis_key_prefix)
            gateway.sessions_store = RedisSessionRecords(client, settings.redis_key_prefix)
            app[LIFECYCLE].adapters["presence"] = "redis"
            app[LIFECYCLE].adapters["sessions"] = "redis"
            app[LIFECYCLE].adapters["socketio"] = "redis"
            gateway.room_channels = _start_room_channels(sio, client, settings.redis_key_prefix,
                                                         gateway.node_id)
        else:
            gateway.presence = MemoryPresenceStore()
            gateway.sessions_store = MemorySessionRecords()
            app[LIFECYCLE].adapters["presence"] = "memory"
            app[LIFECYCLE].adapters["sessions"] = "memory"
            app[LIFECYCLE].adapters["socketio"] = "in-process"
        garbage_collector.tune()
        pool = app[DB_POOL]
        gateway.visibility = PostgresPresenceVisibility(pool)
        gateway.unread = PostgresNotificationStore(pool)
        gateway.authenticate = app[AUTHENTICATOR]
        # Closes zombie sockets and retries failed record removes (see session.sweep).
        gateway.spawn(sweep_forever(gateway), name="gateway:sweep")
        gateway.spawn(watch_listener(sio), name="gateway:listener-watch")

        async def socketio_listening() -> None:
            if not listener_alive(sio):
                raise ConnectionError("the Socket.IO Redis listener is down")

        async def room_channels_listening() -> None:
            if isinstance(gateway.room_channels, RedisRoomChannels) and \
                    not gateway.room_channels.listening:
                raise ConnectionError("the room channel listener is reconnecting")

        if client is not None:
            app[LIFECYCLE].readiness_checks["socketio"] = socketio_listening
            app[LIFECYCLE].readiness_checks["room_channels"] = room_channels_listening
        try:
            yield
        finally:
            await _close(sio, gateway, websockets)
            if isinstance(gateway.room_channels, RedisRoomChannels):
                await gateway.room_channels.stop()

    async def close_sockets(app: web.Application) -> None:
        await _close_sockets(sio, websockets)

    app.on_shutdown.append(close_sockets)
    app.cleanup_ctx.append(gateway_ctx)
    return sio


def _start_room_channels(sio: socketio.AsyncServer, client: Redis, key_prefix: str,
                         node_id: str) -> RedisRoomChannels | None:
    """Emits to chat rooms and presence watchers' rooms cross the network on a channel per
    room (storage/redis/room_channels.py) instead of python-socketio's one channel for
    everything (broadcaster.channel_key)."""
    manager = sio.manager
    if not isinstance(manager, RedisManager):
        return None
    channels = RedisRoomChannels(client, key_prefix, node_id)

    async def deliver(key: str, packet: str, skip: list[str]) -> None:
        await manager.deliver_local("/", room_of_key(key), packet, skip)

    channels.start(deliver)
    manager.room_channels = channels
    return channels


def _add_live_push(app: web.Application, gateway: Gateway) -> None:
    """Hook into the notifications and feed areas so their news reaches sockets."""

    async def notification_sink(user_id: str, notification: Notification) -> None:
        await push_notification(gateway, user_id, notification)

    async def post_for(post_id: str, viewer_id: str) -> Post | None:
        found = await app[POST_READER].get_many([post_id], viewer_id, exclude_muted=True)
        return found[0] if found else None

    async def feed_listener(user_ids: Sequence[str], post_id: str) -> None:
        # In the background: the fan-out consumer must not wait on sockets.
        gateway.spawn(push_feed_post(gateway, post_for, list(user_ids), post_id),
                      name=f"feed:new:{post_id}")

    add_notification_sink(app, notification_sink)
    add_feed_listener(app, feed_listener)


async def _close_sockets(sio: socketio.AsyncServer, websockets: OpenWebSockets) -> None:
    # Runs on_shutdown, before aiohttp waits for in-flight handlers: every open websocket is
    # one, so they must end first. Closing the Engine.IO session (not a Socket.IO-level
    # disconnect) lets clients reconnect, to another node; each close runs the disconnect
    # handler, which tells the user's UserActor. Then the websockets themselves are closed,
    # so a client that does not hang up cannot hold the shutdown.
    if sio.eio.sockets:
        try:
            await asyncio.wait_for(sio.eio.disconnect(), CLOSE_TIMEOUT)
        except Exception:
            log.warning("closing sockets on shutdown failed", exc_info=True)
    await websockets.close_all()


async def _close(sio: socketio.AsyncServer, gateway: Gateway,
                 websockets: OpenWebSockets) -> None:
    await _close_sockets(sio, websockets)  # any that connected during the shutdown
    await gateway.stop_tasks()
    await sio.shutdown()
    manager = sio.manager
    listener = getattr(manager, "thread", None)
    if isinstance(listener, asyncio.Task):  # the Redis manager's pub/sub listener
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    redis_client = getattr(manager, "redis", None)
    if redis_client is not None:
        with contextlib.suppress(Exception):
            await redis_client.aclose()
