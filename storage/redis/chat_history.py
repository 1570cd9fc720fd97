"""Hot chat history in Redis: each room's newest messages, shared by every node.

Key `<prefix>chat:history:<room_id>`: a sorted set scored by seq, each member
`<created_at unix ms>|<message JSON>` (the time prefix lets the append script drop old
messages without decoding JSON). The append script, for each message, atomically: replaces
any entry with the same seq (idempotent), adds, keeps the newest `max_messages`, drops
entries older than `max_age` from the oldest end, and pushes the key's expiry `max_age`
ahead, so a quiet room's history vanishes by itself. Reads also skip entries past `max_age`.

The appends of one event-loop turn go out together, as ONE script call naming every room's
key (after a group commit every room of the batch appends in the same turn): a pipeline of
one call per message cost redis-py's packing, parsing and timeout per call, a fifth of a chat
message's server CPU. A call does not wait for the previous one's reply (the client pipelines
them on one connection: storage/redis/multiplexed.py), so an append waits one round trip,
not the rest of an earlier one too. Several keys in one call need a single Redis
(not Redis Cluster), as the session records' script does. Each `append` returns once its own
entry is written, or raises StorageError: a RoomActor caches a message before it pushes it,
so a message that was pushed is cached, and the resend of one an activation stored but never
pushed (a node killed in between) is pushed once, never twice.
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from protocols.chat import Message
from storage.errors import StorageError

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
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


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
        self.failures = 0  # appends lost to a Redis failure (tests, metrics)

    def _key(self, room_id: str) -> str:
        return self._prefix + room_id

    def _cutoff_ms(self) -> int:
        return int(self._clock() * 1000) - self._max_age_ms

    async def append(self, message: Message) -> None:
        member = b"%d|%s" % (_created_ms(message), _encoder.encode(message))
        pending = _Append(self._key(message.room_id), (
            message.seq, member, self._max_messages, self._cutoff_ms(), self._max_age_ms))
        self._queue.append(pending)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)
        await pending.done

    async def close(self) -> None:
        """Wait for the writes in flight (shutdown)."""
        while self._writing or self._queue:
            if self._queue:
                self._flush()
            await asyncio.gather(*list(self._writing), return_exceptions=True)

    def _flush(self) -> None:
        """Send what this turn queued, in calls of at most MAX_PENDING appends."""
        self._flush_due = False
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._queue[:MAX_PENDING]
            del self._queue[:MAX_PENDING]
            # A context of its own: it writes for every room, not the first caller's trace.
            task = loop.create_task(self._write(batch), name="chat:history-write",
                                    context=contextvars.Context())
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def _write(self, batch: list[_Append]) -> None:
        keys = [pending.key for pending in batch]
        args = [arg for pending in batch for arg in pending.args]
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
        for pending in batch:
            if pending.done.done():
                continue
            if error is None:
                pending.done.set_result(None)
            else:
                failure = StorageError(f"chat history unavailable: {error}")
                failure.__cause__ = error
                pending.done.set_exception(failure)
        if error is not None:
            self.failures += len(batch)

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
