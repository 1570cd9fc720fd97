"""A pub/sub subscriber on a raw connection, read by hiredis: what the room channels and the
cluster transport listen with.

redis-py's PubSub parses each message through its connection's read path, with a timeout
and its observability hooks around every `get_message`: a few percent of a cluster node's CPU
when every chat message crosses nodes. Here the connection's protocol parses what arrives
(hiredis, as redis-py does) into a queue, and `get_message` hands queued messages out without
waiting; it waits (up to `timeout`) only when the queue is empty.

It offers the part of redis-py's PubSub that Hubbub uses (`subscribe`, `unsubscribe`,
`get_message`, `aclose`; messages as the same dicts) and is what MultiplexedRedis.pubsub()
returns. The connection speaks RESP2, where a subscribed connection receives only pub/sub
frames. A lost connection makes `get_message` raise redis-py's ConnectionError; the
listeners then make a new Subscriber and subscribe again. A connection silent for
`health_interval` seconds is sent a PING (as redis-py's health check does), and one that
stays silent another interval is taken for lost: a Redis gone without closing the
connection must not leave a node deaf.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

from storage.redis.resp import Address, pack_command

_MESSAGES = frozenset({b"message", b"pmessage"})
HEALTH_INTERVAL = 30.0


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(protocolError=InvalidResponse,
                                      replyError=BaseParser.parse_error)
        self.transport: asyncio.Transport | None = None
        self.frames: collections.deque[Any] = collections.deque()
        self.lost: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None  # a reader waiting for frames
        self.heard_at = time.monotonic()  # when the last frame arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.heard_at = time.monotonic()
        self._reader.feed(data)
        try:
            while (frame := self._reader.gets()) is not False:
                self.frames.append(frame)
        except InvalidResponse as exc:
            self.lost = RedisConnectionError(f"invalid reply from Redis: {exc}")
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = RedisConnectionError(f"pub/sub connection lost: {exc or 'closed'}")
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Subscriber:
    def __init__(self, address: Address, *, ignore_subscribe_messages: bool = False,
                 health_interval: float = HEALTH_INTERVAL) -> None:
        self._address = address
        self._ignore_subscribe = ignore_subscribe_messages
        self._health_interval = health_interval
        self._pinged_at: float | None = None  # a PING is unanswered since then
        self._protocol: _Protocol | None = None

    async def subscribe(self, *channels: str) -> None:
        """Ask for the channels' messages (Redis confirms each with a `subscribe` message)."""
        protocol = self._protocol or await self._connect()
        self._write(protocol, ("SUBSCRIBE", *channels))

    async def unsubscribe(self, *channels: str) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            self._write(protocol, ("UNSUBSCRIBE", *channels))

    async def get_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message as redis-py's PubSub gives it (`type`, `pattern`, `channel`,
        `data`); None when none came within `timeout` seconds. Raises ConnectionError once
        the connection is lost, ResponseError for an error Redis sent."""
        protocol = self._protocol
        if protocol is None:
            raise RedisConnectionError("not subscribed to anything")
        while True:
            while protocol.frames:
                message = self._message(protocol.frames.popleft())
                if message is not None:
                    return message
            if protocol.lost is not None:
                raise protocol.lost
            protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await protocol.waiter
            except TimeoutError:
                self._check_health(protocol)
                return None
            finally:
                protocol.waiter = None

    def _check_health(self, protocol: _Protocol) -> None:
        now = time.monotonic()
        if self._pinged_at is not None and protocol.heard_at >= self._pinged_at:
            self._pinged_at = None  # answered (or something else came)
        if self._pinged_at is None:
            if now - protocol.heard_at >= self._health_interval:
                self._pinged_at = now
                self._write(protocol, ("PING",))
        elif now - self._pinged_at >= self._health_interval:
            protocol.lost = RedisConnectionError("Redis did not answer a PING on the pub/sub "
                                                 "connection")
            if protocol.transport is not None:
                protocol.transport.abort()
            raise protocol.lost

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    def _message(self, frame: Any) -> dict[str, Any] | None:
        if isinstance(frame, ResponseError):
            raise frame
        if not isinstance(frame, list) or not frame or frame[0] == b"pong":
            return None  # AUTH's OK, a PING's answer
        kind = frame[0]
        if kind == b"pmessage":
            return {"type": "pmessage", "pattern": frame[1], "channel": frame[2],
                    "data": frame[3]}
        if kind not in _MESSAGES and self._ignore_subscribe:
            return None
        return {"type": kind.decode(), "pattern": None, "channel": frame[1], "data": frame[2]}

    async def _connect(self) -> _Protocol:
        address = self._address
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(address.connect_timeout):
                _, protocol = await loop.create_connection(_Protocol, address.host,
                                                           address.port)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(
                f"Error connecting to {address.host}:{address.port}: {exc}") from exc
        if address.password is not None:
            # Its reply (OK, or an error) comes first in the stream: `_message` skips an OK
            # and raises an error to the reader.
            auth = ("AUTH", address.username, address.password) if address.username \
                else ("AUTH", address.password)
            self._write(protocol, auth)
        self._protocol = protocol
        return protocol

    @staticmethod
    def _write(protocol: _Protocol, command: tuple[Any, ...]) -> None:
        if protocol.transport is None or protocol.lost is not None:
            raise protocol.lost or RedisConnectionError("pub/sub connection not open")
        protocol.transport.write(pack_command(command))
