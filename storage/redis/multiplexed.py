"""One Redis connection shared by every caller: commands pipelined, replies matched in order.

redis-py's asyncio client takes a pooled connection for each command, wraps the write and the
read in timeouts, retries through a Retry object, records observability hooks and gives the
connection back: about 0.1-0.2 ms of CPU per command, where a chat message and a socket
connect each make a few. Redis answers the commands of a connection in the order it received
them, so a single connection can carry every caller's commands at once (as ioredis and
StackExchange.Redis do): `MultiplexedRedis.execute_command` packs the command, queues it for
the connection and awaits a future that the connection's protocol resolves when its reply
(parsed by hiredis, redis-py's own parser) comes in. The commands queued during one turn of
the event loop go out in one write at the end of the turn (one system call for, say, every
room's history append and room publish of a group commit). Nothing waits for a free
connection, and one watchdog timer per connection replaces a timeout per command.

Only commands that leave the connection's state alone go this way; blocking commands,
transactions (WATCH/MULTI/EXEC), pub/sub and connection-state commands take redis-py's own
path through the pool. A pipeline without a transaction sends its commands together on the
shared connection (MultiplexedPipeline); a transaction takes a pooled connection.
`pubsub()` answers a Subscriber of its own connection (storage/redis/subscriber.py), or
redis-py's PubSub when asked for options beyond `ignore_subscribe_messages`.

Failures: a reply that is a Redis error raises the exception redis-py would raise (its error
parser: NoScriptError for NOSCRIPT, ...). A lost connection fails every command in flight
with redis-py's ConnectionError (whether Redis ran them is unknown, as with any client), and
the next command connects again. When the oldest command in flight has waited `timeout`
seconds, the connection is taken for dead: it is closed and its commands fail with
redis-py's TimeoutError. Commands are not retried: the callers' own failure handling (they
all treat RedisError as "unavailable") decides.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import time
from typing import Any, cast

import hiredis
import redis.asyncio as redis
from redis._parsers.base import BaseParser
from redis.asyncio.client import Pipeline
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.redis.resp import Address, pack_command
from storage.redis.subscriber import Subscriber

# Commands that block, hold or change the connection's state: redis-py's pooled path.
POOLED = frozenset({
    "AUTH", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX",
    "BZPOPMIN", "CLIENT", "DISCARD", "EXEC", "HELLO", "MONITOR", "MULTI", "PSUBSCRIBE",
    "PUNSUBSCRIBE", "QUIT", "READONLY", "READWRITE", "RESET", "SELECT", "SSUBSCRIBE",
    "SUBSCRIBE", "SUNSUBSCRIBE", "SYNC", "UNSUBSCRIBE", "UNWATCH", "WAIT", "WAITAOF", "WATCH",
    "XREAD", "XREADGROUP",
})
_WATCHDOG_EVERY = 0.5  # seconds between two checks of the oldest command in flight


class _Protocol(asyncio.Protocol):
    """The reading side of one connection: each reply resolves the oldest waiting future."""

    def __init__(self, timeout: float) -> None:
        self._reader = hiredis.Reader(protocolError=InvalidResponse,
                                      replyError=BaseParser.parse_error)
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outgoing: list[bytes] = []  # packed commands of this loop turn, not written yet
        self._timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None  # why the connection ended; None while it is up
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((future, time.monotonic()))
        if not self._outgoing:
            loop.call_soon(self._write)
        self._outgoing.append(packed)
        if self._watchdog is None:
            self._watchdog = loop.call_later(_WATCHDOG_EVERY, self._check)
        return future

    def _write(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self.transport is not None and self.lost is None:
            self.transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = self._reader.gets()
            except InvalidResponse as exc:  # the stream is out of step: nothing can be trusted
                self._close(RedisConnectionError(f"invalid reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # nothing asked for it (cannot happen with Redis): drop the stream
                self._close(RedisConnectionError("a reply from Redis that nothing asked for"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        if time.monotonic() - self._waiting[0][1] >= self._timeout:
            self._close(RedisTimeoutError("Timeout reading from Redis"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(_WATCHDOG_EVERY, self._check)

    def _close(self, error: Exception) -> None:
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        self._close(RedisConnectionError("connection closed"))


class MultiplexedRedis(redis.Redis):
    """redis.asyncio.Redis whose plain commands share one pipelined connection (module
    docstring). Built by storage/redis/client.py for plain TCP URLs."""

    def __init__(self, *, connection_pool: redis.ConnectionPool, **kwargs: Any) -> None:
        super().__init__(connection_pool=connection_pool, **kwargs)
        settings = connection_pool.connection_kwargs
        self._host = settings.get("host", "localhost")
        self._port = int(settings.get("port", 6379))
        self._db = int(settings.get("db", 0) or 0)
        self._username = settings.get("username")
        self._password = settings.get("password")
        self._connect_timeout = settings.get("socket_connect_timeout") or 5.0
        self._timeout = settings.get("socket_timeout") or 5.0
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = args[0]
        if NEVER_DECODE in options or not isinstance(name, str) \
                or name.split(" ", 1)[0].upper() in POOLED:
            return await super().execute_command(*args, **options)
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        try:
            response = await protocol.send(self._pack(args))
        except ResponseError:
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise
        return await self._parse(name, response, options)

    async def _parse(self, name: str, response: Any, options: dict[str, Any]) -> Any:
        """A raw reply as redis-py's client would answer it: through the command's response
        callback (`options` are the command's, consumed here)."""
        options.pop(EMPTY_RESPONSE, None)
        options.pop("keys", None)
        callbacks = self.response_callbacks  # case-insensitive by `in` and [], not by get()
        if name not in callbacks:
            return response
        result = callbacks[name](response, **options)
        return await result if inspect.isawaitable(result) else result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        """Without a transaction, a pipeline whose commands go together on the shared
        connection (MultiplexedPipeline); a transaction takes a pooled connection."""
        if transaction:
            return super().pipeline(transaction, shard_hint)
        return MultiplexedPipeline(self, shard_hint)

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Plain commands sent together (one write), in order; each one's raw reply (no
        response callback) or the exception it failed with, in their order: a pipeline
        without a pooled connection. Raises only when no connection can be made."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        futures = [protocol.send(self._pack(command)) for command in commands]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    def send_now(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue a plain command without waiting, and return the future of its raw reply (no
        response callback); None when no connection is up (then use the awaitable path,
        which connects). The connection's write is already scheduled, and the loop runs
        callbacks in the order they were scheduled: whatever this call wakes (a future it
        resolves after) runs once the command is in the kernel's hands, ahead of every later
        command of this client (storage/redis/chat_history.py: cached before pushed)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            return None
        return protocol.send(self._pack(args))

    def _pack(self, args: tuple[Any, ...]) -> bytes:
        return pack_command(args)

    def pubsub(self, **kwargs: Any) -> Any:
        """A Subscriber (storage/redis/subscriber.py) on a connection of its own when only
        `ignore_subscribe_messages` is asked for; redis-py's PubSub otherwise."""
        if set(kwargs) <= {"ignore_subscribe_messages"}:
            return Subscriber(self.address(), **kwargs)
        return super().pubsub(**kwargs)

    def address(self) -> Address:
        """Where this client connects (its subscribers connect there too)."""
        return Address(self._host, self._port, self._username, self._password,
                       self._connect_timeout)

    async def _connect(self) -> _Protocol:
        """The live connection, made once for every caller waiting on it."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self._timeout), self._host, self._port)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(
                f"Error connecting to {self._host}:{self._port}: {exc}") from exc
        # RESP3, as redis-py's own connections speak by default: its response callbacks (a
        # hash as a dict, ...) expect RESP3 replies.
        hello: tuple[Any, ...] = ("HELLO", 3)
        if self._password is not None:
            hello += ("AUTH", self._username or "default", self._password)
        setup: list[tuple[Any, ...]] = [hello]
        if self._db:
            setup.append(("SELECT", self._db))
        try:
            for command in setup:
                await protocol.send(self._pack(command))
        except Exception:
            protocol.close()
            raise
        self._protocol = protocol
        return protocol

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None
        await super().aclose(close_connection_pool)


class MultiplexedPipeline(Pipeline):
    """redis-py's pipeline without a transaction, its commands sent together on the client's
    shared connection (`execute_many`) instead of a pooled one, which a burst of pipelines
    would each take, or open: every room reading its members' presence when a chat load
    started opened 25 connections within 20 ms. Replies go through the commands' response
    callbacks as redis-py's would. WATCH, MULTI, registered scripts, or a command that must
    not share the connection: redis-py's own path."""

    def __init__(self, client: MultiplexedRedis, shard_hint: str | None) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, False, shard_hint)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if not stack and not self.watching:
            return []
        if self.watching or self.explicit_transaction or self.scripts or any(
                NEVER_DECODE in options or not isinstance(args[0], str)
                or args[0].split(" ", 1)[0].upper() in POOLED for args, options in stack):
            return cast(list[Any], await super().execute(raise_on_error))
        try:
            replies = await self._client.execute_many([args for args, _ in stack])
        finally:
            await self.reset()
        answers: list[Any] = []
        for (args, options), reply in zip(stack, replies, strict=True):
            if isinstance(reply, ResponseError) and EMPTY_RESPONSE in options:
                reply = options[EMPTY_RESPONSE]
            elif not isinstance(reply, Exception):
                reply = await self._client._parse(args[0], reply, dict(options))
            answers.append(reply)
        if raise_on_error:
            for answer in answers:
                if isinstance(answer, Exception):
                    raise answer
        return answers
