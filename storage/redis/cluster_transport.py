"""actors.remote.Transport over Redis pub/sub: one channel per node plus one for all nodes.

Outbound: on the node's multiplexed client (storage/redis/multiplexed.py) `send` queues the
PUBLISH on its connection at once: it leaves with every other command of this loop turn in
one write (a reply to an ask goes out with the history append and the room packet made just
before it: about 3% less CPU per delivery on two nodes). Otherwise (redis-py's client, or the
connection is down and must be made first) sends queue, and one writer task publishes the
queue in order, pipelining whatever has accumulated into one round trip. Either way sends
from this node to another arrive in the order they were made. PUBLISH answers how many
subscribers got the message: 0 tells the caller at once that the node is not listening; a
send lost with the connection fails its future.

Inbound: one pub/sub connection subscribed to `<prefix>cluster:node:<id>` and
`<prefix>cluster:all`, read by a listener task that hands every payload to the router. Redis
may drop a subscriber (a restart, or the client output buffer limit): the listener notices,
reconnects with backoff and resubscribes, and `listening` reports the gap (readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.cluster import TransportFull
from storage.redis.multiplexed import MultiplexedRedis

log = logging.getLogger("hubbub.cluster")
OUTBOUND_LIMIT = 10_000  # queued sends; past this, senders get TransportFull (backpressure)
BATCH = 256  # publishes per pipeline round trip
_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0)


def node_channel(prefix: str, node_id: str) -> str:
    return f"{prefix}cluster:node:{node_id}"


class RedisClusterTransport:
    def __init__(self, client: redis.Redis, key_prefix: str, node_id: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self._own = node_channel(key_prefix, node_id)
        self._all = f"{key_prefix}cluster:all"
        self._queue: asyncio.Queue[tuple[str, bytes, asyncio.Future[int]]] = asyncio.Queue(
            OUTBOUND_LIMIT)
        self._handler: Callable[[bytes], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._publishing = False  # the writer task holds a batch not written yet
        self.listening = False

    # -- actors.remote.Transport --------------------------------------------------------------

    def send(self, node: str, payload: bytes) -> asyncio.Future[int]:
        return self._enqueue(node_channel(self._prefix, node), payload)

    def broadcast(self, payload: bytes) -> asyncio.Future[int]:
        return self._enqueue(self._all, payload)

    def _enqueue(self, channel: str, payload: bytes) -> asyncio.Future[int]:
        if isinstance(self._client, MultiplexedRedis) and not self._publishing \
                and self._queue.empty():
            # Nothing sent earlier is still waiting (queued, or in the writer's hands).
            published = self._client.send_now("PUBLISH", channel, payload)
            if published is not None:
                return published
        sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((channel, payload, sent))
        except asyncio.QueueFull:
            raise TransportFull("the cluster outbound queue is full") from None
        return sent

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, handler: Callable[[bytes], None]) -> None:
        """Subscribe (returns once subscribed) and start publishing."""
        self._handler = handler
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="cluster:listen"),
                       loop.create_task(self._publish(), name="cluster:publish")]
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            _, _, sent = self._queue.get_nowait()
            if not sent.done():
                sent.set_result(0)

    async def _publish(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._publishing = True
            try:
                counts = await self._publish_batch([(channel, payload)
                                                    for channel, payload, _ in batch])
            except (RedisError, OSError) as exc:
                log.warning("cluster publish failed: %s", exc)
                counts = [0] * len(batch)  # not sent: the senders route again
            finally:
                self._publishing = False
            for (_, _, sent), count in zip(batch, counts, strict=True):
                if not sent.done():
                    sent.set_result(int(count))

    async def _publish_batch(self, batch: list[tuple[str, bytes]]) -> list[int]:
        """How many subscribers got each message; 0 for one that failed."""
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, payload in batch:
                pipe.publish(channel, payload)
            replies = await pipe.execute(raise_on_error=False)
        return [0 if isinstance(reply, Exception) else int(reply) for reply in replies]

    def _deliver(self, payload: bytes) -> None:
        assert self._handler is not None
        try:
            self._handler(payload)
        except Exception:  # one bad message must not stop the listener
            log.exception("cluster message handler failed")

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._own, self._all)
                self.listening = True
                self._subscribed.set()
                attempt = 0
                while True:
                    # A bounded wait: the shared client's socket timeout must not fire.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and self._handler is not None:
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: resubscribe, do not die
                self.listening = False
                delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
                attempt += 1
                log.warning("cluster listener lost Redis (%s); resubscribing in %.1fs", exc,
                            delay)
                await asyncio.sleep(delay)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
