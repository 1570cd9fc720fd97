"""A Redis pub/sub channel per room, so that a room's messages cross the network once per node
that has members in it. The gateway routes chat rooms and presence watchers' rooms this way
(server/gateway/broadcaster.py channel_key); a room here is any key it gives.

python-socketio's Redis manager publishes every emit on one channel that every node reads and
unpickles, whether or not it holds a socket of the room. Here a node subscribes to
`<prefix>sio:room:<room>` while it holds at least one socket in the room (`hold` / `release`,
counted per socket), and an emit publishes the already encoded Socket.IO packet there once:
Redis hands it to exactly the nodes that subscribed. A node ignores what it published itself
(it delivered to its own sockets before publishing).

`hold` returns once Redis confirmed the subscription, so a socket's room:join is acked only
after every later message of the room reaches its node. Redis may drop the subscriber (a
restart, the output buffer limit): the listener reconnects with backoff and subscribes to every
held room again; messages published in the gap are not replayed (clients catch up with
room:join since_seq). Single Redis or primary: channels are not sharded here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from storage.errors import StorageError
from storage.redis.multiplexed import MultiplexedRedis

log = logging.getLogger("hubbub.gateway")
SUBSCRIBE_TIMEOUT = 5.0  # seconds a hold waits for Redis to confirm the subscription
_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0)


class RoomPacket(msgspec.Struct, array_like=True, frozen=True):
    """What crosses the network for one emit to a room."""

    sender: str  # node id
    room: str  # the room's id
    packet: str  # the encoded Socket.IO packet, as written to each socket
    skip: list[str] = []  # socket ids not to deliver to


# (room id, encoded packet, socket ids to skip): deliver to this node's sockets in the room.
Deliver = Callable[[str, str, list[str]], Awaitable[None]]


class RedisRoomChannels:
    def __init__(self, client: redis.Redis, key_prefix: str, node_id: str) -> None:
        self._client = client
        self._prefix = f"{key_prefix}sio:room:"
        self._node_id = node_id
        self._holds: dict[str, int] = {}  # room -> sockets of this node in it
        self._confirmed: dict[str, asyncio.Future[None]] = {}  # channel -> its subscription
        self._pubsub: redis.client.PubSub | None = None
        self._deliver: Deliver | None = None
        self._listener: asyncio.Task[None] | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(RoomPacket).decode
        self._listening = asyncio.Event()
        self.published = 0  # packets sent (metrics, tests)
        self.failures = 0  # packets Redis refused after `publish` returned
        self.received = 0  # packets from other nodes delivered here

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def wait_listening(self) -> None:
        """Until the listener is subscribed (at start, or after a reconnect)."""
        await self._listening.wait()

    def channel(self, room_id: str) -> str:
        return self._prefix + room_id

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name="gateway:room-channels")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for confirmed in self._confirmed.values():
            confirmed.cancel()
        self._confirmed.clear()

    # -- membership of this node --------------------------------------------------------------

    async def hold(self, room_id: str) -> None:
        """One more socket of this node in the room; returns once the node receives the
        room's packets. Raises StorageError when Redis cannot confirm that in time."""
        count = self._holds.get(room_id, 0)
        self._holds[room_id] = count + 1
        channel = self.channel(room_id)
        try:
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                if count:
                    return  # subscribed and confirmed already
                confirmed = self._confirmed[channel] = \
                    asyncio.get_running_loop().create_future()
                await self._subscribe(channel)
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await asyncio.shield(confirmed)
        except (RedisError, OSError, TimeoutError, StorageError) as exc:
            await self.release(room_id)
            raise StorageError(f"room channel unavailable: {exc}") from exc

    async def release(self, room_id: str) -> None:
        """One socket fewer; the last one unsubscribes the node."""
        count = self._holds.get(room_id, 0) - 1
        if count > 0:
            self._holds[room_id] = count
            return
        self._holds.pop(room_id, None)
        channel = self.channel(room_id)
        pending = self._confirmed.pop(channel, None)
        if pending is not None and not pending.done():
            pending.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):  # a lost connection drops it anyway
                await self._pubsub.unsubscribe(channel)

    def holds(self, room_id: str) -> int:
        return self._holds.get(room_id, 0)

    async def _subscribe(self, channel: str) -> None:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await self._listening.wait()  # starting, or reconnecting: it subscribes us then
        if self._pubsub is not None:
            await self._pubsub.subscribe(channel)

    # -- packets ------------------------------------------------------------------------------

    async def publish(self, room_id: str, packet: str, skip: list[str]) -> int | None:
        """Send the packet to the other nodes holding the room; returns how many subscribers
        Redis counted (this node's own included). Raises StorageError when Redis fails.

        On the node's multiplexed connection (storage/redis/multiplexed.py) it does not wait
        for Redis: the PUBLISH is queued for this loop turn's write, behind every command
        queued before it (the room's history append), so packets leave in call order, and
        it returns None. A failure reported later is counted (`failures`) and logged."""
        payload = self._encode(RoomPacket(self._node_id, room_id, packet, skip))
        client = self._client
        if isinstance(client, MultiplexedRedis):
            sent = client.send_now("PUBLISH", self.channel(room_id), payload)
            if sent is not None:  # else not connected: the awaited path connects
                sent.add_done_callback(self._reported)
                self.published += 1
                return None
        try:
            count = int(await self._client.publish(self.channel(room_id), payload))
        except (RedisError, OSError) as exc:
            raise StorageError(f"room channel publish failed: {exc}") from exc
        self.published += 1
        return count

    def _reported(self, sent: asyncio.Future[object]) -> None:
        error = None if sent.cancelled() else sent.exception()
        if error is not None:
            self.failures += 1
            log.warning("room channel publish failed: %s", error)

    async def _received(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if kind == "subscribe":
            confirmed = self._confirmed.get(str(channel))
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if kind != "message" or self._deliver is None:
            return
        try:
            room_packet = self._decode(message["data"])  # type: ignore[arg-type]
        except msgspec.DecodeError:
            log.warning("dropped an undecodable room packet on %s", channel)
            return
        if room_packet.sender == self._node_id:
            return  # delivered to this node's sockets before it was published
        self.received += 1
        try:
            await self._deliver(room_packet.room, room_packet.packet, room_packet.skip)
        except Exception:  # one bad packet must not stop the listener
            log.exception("room packet delivery failed")

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self._client.pubsub()
            try:
                # Something to subscribe to, so the connection exists and reads; then every
                # room this node holds (again, after a reconnect).
                await pubsub.subscribe(self._prefix + "-")
                self._pubsub = pubsub
                self._listening.set()
                for room_id in list(self._holds):
                    channel = self.channel(room_id)
                    self._confirmed.setdefault(
                        channel, asyncio.get_running_loop().create_future())
                    await pubsub.subscribe(channel)
                attempt = 0
                while True:
                    # A bounded wait: the shared client's socket timeout must not fire.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._received(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: resubscribe, do not die
                delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
                attempt += 1
                log.warning("room channel listener lost Redis (%s); resubscribing in %.1fs",
                            exc, delay)
                self._forget_confirmations()
                await asyncio.sleep(delay)
            finally:
                self._listening.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _forget_confirmations(self) -> None:
        # Subscriptions died with the connection: holds waiting on them fail (their join is
        # refused as unavailable); the next connection subscribes to every held room again.
        for confirmed in self._confirmed.values():
            if not confirmed.done():
                confirmed.set_exception(ConnectionError("the room channel connection was lost"))
                confirmed.exception()  # retrieved: a hold that gave up must not leave it unseen
        self._confirmed.clear()
