"""Hot chat history in Redis: each room's newest messages, shared by every node.

Key `<prefix>chat:history:<room_id>`: a sorted set scored by seq, each member
`<created_at unix ms>|<message JSON>` (the time prefix lets the append script drop old
messages without decoding JSON). The append script, for each message, atomically: replaces
any entry with the same seq (idempotent), adds, keeps the newest `max_messages`, drops
entries older than `max_age` from the oldest end, and pushes the key's expiry `max_age`
ahead, so a quiet room's history vanishes by itself. Reads also skip entries past `max_age`.

Each append is one script call. With the multiplexed client (storage/redis/multiplexed.py,
what `create_redis` builds for TCP) it is queued on the node's connection (`send_now`) the
moment it is made, and the caller goes on in the same step: the call leaves in the
connection's next write, ahead of every later command of the node, the room's publish to
other nodes and any `after` included. So a group commit's history appends and room publishes
go out in ONE write. (Appends used to be collected for the rest of the loop turn into one
call: that took a write of its own and two loop turns before the RoomActor could push, for
about 100 more writes and reads a second on each node of a two-node cluster at 500
messages/s.) Without a connection up, appends wait for it together and go as one call (in
calls of MAX_PENDING at most); several keys in one call need a single Redis (not Redis
Cluster), as the session records' script does.

A RoomActor caches a message before it pushes it, so what it pushed is in the history unless
Redis failed the call (a failure is logged and counted, never raised into the send), or the
node died between writing the message to its own sockets and the loop turn's write to
Redis: then the sockets that had it died with the node, and their clients rejoin from the
last seq they hold. So the resend of a message that an activation stored but never pushed (a
node killed in between) is pushed once, never twice. Redis without the script (it restarted)
answers NOSCRIPT: the call is made again, with the script loaded, in the background. Another
client (a unix socket, TLS) awaits each call's reply and raises StorageError, as before.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from protocols.chat import Message
from storage.errors import StorageError
from storage.redis.multiplexed import MultiplexedRedis

log = logging.getLogger("hubbub.storage.chat_history")

MAX_PENDING = 200  # appends per script call; a turn with more makes several calls

# One call appends a whole round trip's messages, of any rooms. KEYS[i]: a room's history;
# ARGV[5i-4..5i]: its message's seq, member, max messages, cutoff (unix ms; older entries go)
# and key expiry (ms).
_APPEND = """
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 5
  local seq = ARGV[at + 1]
  redis.call('ZREMRANGEBYSCORE', key, seq, seq)
  redis.call('ZADD', key, seq, ARGV[at + 2])
  redis.call('ZREMRANGEBYRANK', key, 0, -(tonumber(ARGV[at + 3]) + 1))
  local cutoff = tonumber(ARGV[at + 4])
  while true do
    local first = redis.call('ZRANGE', key, 0, 0)
    if #first == 0 then break end
    local ms = tonumber(string.match(first[1], '^(%d+)|'))
    if ms == nil or ms >= cutoff then break end
    redis.call('ZREMRANGEBYRANK', key, 0, 0)
  end
  redis.call('PEXPIRE', key, ARGV[at + 5])
end
return #KEYS
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


@dataclass(slots=True)
class _Append:
    key: str
    args: tuple[int | bytes, ...]
    # What the caller awaits while the append waits for the connection; None: it was answered
    # when queued (nobody waits).
    done: asyncio.Future[None] | None = None

    def answer(self, error: BaseException | None = None) -> None:
        if self.done is None or self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


def _call_args(batch: list[_Append]) -> tuple[list[str], list[int | bytes]]:
    return [pending.key for pending in batch], [arg for p in batch for arg in p.args]


def _created_ms(message: Message) -> int:
    return int(message.created_at.timestamp() * 1000)


class RedisChatHistory:
    def __init__(self, client: redis.Redis, key_prefix: str, *, max_messages: int = 1000,
                 max_age: float = 7 * 24 * 3600,
                 clock: Callable[[], float] = time.time) -> None:
        if max_messages < 1 or max_age <= 0:
            raise ValueError("max_messages and max_age must be positive")
        self._client = client
        self._prefix = f"{key_prefix}chat:history:"
        self._max_messages = max_messages
        self._max_age_ms = int(max_age * 1000)
        self._clock = clock  # wall clock: compared with the messages' created_at
        self._script = client.register_script(_APPEND)
        self._queue: list[_Append] = []
        self._flush_due = False  # a flush is scheduled for the end of this loop turn
        self._writing: set[asyncio.Task[None]] = set()
        self._unconfirmed: set[asyncio.Future[object]] = set()  # written, no reply yet
        self.failures = 0  # appends lost to a Redis failure (tests, metrics)

    def _key(self, room_id: str) -> str:
        return self._prefix + room_id

    def _cutoff_ms(self) -> int:
        return int(self._clock() * 1000) - self._max_age_ms

    async def append(self, message: Message) -> None:
        member = b"%d|%s" % (_created_ms(message), _encoder.encode(message))
        pending = _Append(self._key(message.room_id), (
            message.seq, member, self._max_messages, self._cutoff_ms(), self._max_age_ms))
        if not self._queue and self._send_now([pending]):
            return  # queued on the connection, ahead of the caller's next command
        loop = asyncio.get_running_loop()
        done = pending.done = loop.create_future()
        self._queue.append(pending)
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        await done

    async def close(self) -> None:
        """Wait for the writes in flight and their replies (shutdown)."""
        while self._writing or self._queue or self._unconfirmed:
            if self._queue:
                self._flush()
            await asyncio.gather(*self._writing, *self._unconfirmed, return_exceptions=True)

    def _flush(self) -> None:
        """Send what this turn queued, in calls of at most MAX_PENDING appends."""
        self._flush_due = False
        while self._queue:
            batch = self._queue[:MAX_PENDING]
            del self._queue[:MAX_PENDING]
            if not self._send_now(batch):
                self._write_later(batch)

    def _write_later(self, batch: list[_Append]) -> None:
        # A context of its own: it writes for every room, not the first caller's trace.
        task = asyncio.get_running_loop().create_task(
            self._write(batch), name="chat:history-write", context=contextvars.Context())
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _send_now(self, batch: list[_Append]) -> bool:
        """Queue the call and answer its appends; False when that cannot be done (not the
        multiplexed client, or no connection up: `_write` connects and awaits)."""
        if not isinstance(self._client, MultiplexedRedis):
            return False
        keys, args = _call_args(batch)
        reply = self._client.send_now("EVALSHA", self._script.sha, len(keys), *keys, *args)
        if reply is None:
            return False
        for pending in batch:
            pending.answer()
        self._unconfirmed.add(reply)
        reply.add_done_callback(lambda done: self._confirmed(batch, done))
        return True

    def _confirmed(self, batch: list[_Append], reply: asyncio.Future[object]) -> None:
        self._unconfirmed.discard(reply)
        error = None if reply.cancelled() else reply.exception()
        if error is None:
            return
        if isinstance(error, NoScriptError):
            self._write_later(batch)  # loads the script and calls again (idempotent)
            return
        self.failures += len(batch)
        log.warning("chat history: %d appends lost: %s", len(batch), error)

    async def _write(self, batch: list[_Append]) -> None:
        keys, args = _call_args(batch)
        error: Exception | None = None
        try:
            try:
                await self._client.evalsha(self._script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # Redis restarted (scripts are not kept): load it, then send the batch again;
                # an append is idempotent (same seq, same member).
                await self._client.script_load(_APPEND)
                await self._client.evalsha(self._script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            error = exc
        # Answered already when they were queued on the connection (then NOSCRIPT sent them
        # here again).
        answered = all(pending.done is None or pending.done.done() for pending in batch)
        for pending in batch:
            failure = None
            if error is not None:  # one for each caller: each raises it in its own stack
                failure = StorageError(f"chat history unavailable: {error}")
                failure.__cause__ = error
            pending.answer(failure)
        if error is not None:
            self.failures += len(batch)
            if answered:  # nobody hears of it but the log
                log.warning("chat history: %d appends lost: %s", len(batch), error)

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        if limit < 1:
            return []
        try:
            members = await self._client.zrange(self._key(room_id), f"({after_seq}", "+inf",
                                                byscore=True, offset=0, num=limit)
        except (RedisError, OSError) as exc:
            raise StorageError(f"chat history unavailable: {exc}") from exc
        cutoff = self._cutoff_ms()
        found = []
        for member in members:
            created, _, raw = bytes(member).partition(b"|")
            if int(created) >= cutoff:
                found.append(_decoder.decode(raw))
        return found
