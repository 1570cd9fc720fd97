"""Hot chat history in Redis: each room's newest messages, shared by every node.

Key `<prefix>chat:history:<room_id>`: a sorted set scored by seq, each member
`<created_at unix ms>|<message JSON>` (the time prefix lets the append script drop old
messages without decoding JSON). One script per append, atomic: replace any entry with the
same seq (idempotent), add, keep the newest `max_messages`, drop entries older than `max_age`
from the oldest end, and push the key's expiry `max_age` ahead, so a quiet room's history
vanishes by itself. Reads also skip entries past `max_age`. Each call names its one key, so it
works unchanged on Redis Cluster.

Appends made while earlier ones are on the wire go out together, as one pipeline (one round
trip for many rooms: after a group commit every room of the batch appends in the same loop
turn). Each `append` returns once its own entry is written, or raises StorageError: a RoomActor
caches a message before it pushes it, so a message that was pushed is cached, and the resend
of one an activation stored but never pushed (a node killed in between) is pushed once, never
twice.
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

MAX_PENDING = 200  # appends per pipeline; more wait for the next round trip

# KEYS[1]: the room's history. ARGV[1]: seq; ARGV[2]: member; ARGV[3]: max messages;
# ARGV[4]: cutoff (unix ms; older entries go); ARGV[5]: key expiry (ms).
_APPEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
local cutoff = tonumber(ARGV[4])
while true do
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #first == 0 then break end
  local ms = tonumber(string.match(first[1], '^(%d+)|'))
  if ms == nil or ms >= cutoff then break end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
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
        self._writer: asyncio.Task[None] | None = None
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
        if self._writer is None:
            # A context of its own: it writes for every room, not the first caller's trace.
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="chat:history-writer", context=contextvars.Context())
        await pending.done

    async def close(self) -> None:
        """Write what is queued (shutdown)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_PENDING]
                del self._queue[:MAX_PENDING]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[_Append]) -> None:
        try:
            results = await self._pipeline(batch)
            if any(isinstance(r, NoScriptError) for r in results):
                # Redis restarted (scripts are not kept): load it, then send the batch again;
                # an append is idempotent (same seq, same member).
                await self._client.script_load(_APPEND)
                results = await self._pipeline(batch)
        except (RedisError, OSError) as exc:
            results = [exc] * len(batch)
        failed = 0
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                failed += 1
                if not pending.done.done():
                    error = StorageError(f"chat history unavailable: {result}")
                    error.__cause__ = result
                    pending.done.set_exception(error)
            elif not pending.done.done():
                pending.done.set_result(None)
        self.failures += failed

    async def _pipeline(self, batch: list[_Append]) -> list[object]:
        async with self._client.pipeline(transaction=False) as pipe:
            for pending in batch:
                pipe.evalsha(self._script.sha, 1, pending.key, *pending.args)
            return list(await pipe.execute(raise_on_error=False))

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
