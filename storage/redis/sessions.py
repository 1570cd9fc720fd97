"""Session records in Redis: the `SessionRecords` (server/gateway/ports.py) every node of a
cluster shares.

Keys:
- `<prefix>sessions:<user id>`: a hash, socket id -> id of the node holding the socket;
- `<prefix>node-users:<node id>`: a set of the users with a session recorded on that node.

Invariant kept by every write: a user is in a node's set exactly when their hash has a field
naming that node (expiry aside). Each add and remove is one Lua script over the user's hash
and the node's set, so writes from several nodes interleave safely; the two keys are not in
one hash slot, so this needs a single Redis (primary), not Redis Cluster. Both keys get an
expiry of `ttl` on every add, so records whose remove was lost (a Redis error during a
disconnect, a node that died and was never forgotten) vanish by themselves.

`open` is an add that also reads, in the same script and so in one round trip, what the
gateway needs next about the user: how many sessions they have recorded, their cached token
watermark (storage/redis/token_watermarks.py: 0 when none is cached but the cache is marked
complete) and a snapshot of their presence record (storage/redis/presence.py). The reads
follow the write atomically: a sign-out that raises the watermark after them lists this
session when it closes the user's sockets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from protocols.user_messages import PresenceSnapshot
from storage.errors import StorageError
from storage.redis.presence import SNAPSHOT_FIELDS, parse_snapshot
from storage.redis.token_watermarks import parse_watermark

DEFAULT_TTL = 7 * 24 * 3600.0
_FORGET_BATCH = 200  # users per forget_node script: keeps each script short for Redis

# KEYS[1]: user hash; KEYS[2]: node set. ARGV[1]: session id; ARGV[2]: node id;
# ARGV[3]: user id; ARGV[4]: ttl (s).
_RECORD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
"""
_ADD = _RECORD + "return 1"

# _ADD's write, then the reads of `open`: KEYS[3] the user's cached watermark, KEYS[4] their
# presence record, KEYS[5] the watermark cache's completeness marker, ARGV[5..] the record's
# SNAPSHOT_FIELDS. Answers {sessions recorded, {fields}, watermark} (a missing field or key
# reads as false in Lua: nil to the caller); a missing watermark reads as '0' while the marker
# exists, as RedisWatermarkCache.get reads it.
_OPEN = _RECORD + """
local watermark = redis.call('GET', KEYS[3])
if not watermark and redis.call('EXISTS', KEYS[5]) == 1 then watermark = '0' end
return {redis.call('HLEN', KEYS[1]), redis.call('HMGET', KEYS[4], unpack(ARGV, 5)), watermark}
"""

# Same KEYS; ARGV[1..3] as in _ADD. Only a record naming this node is dropped (a node removes
# only what it wrote); the user stays in the node's set while another session of theirs is
# recorded there.
_REMOVE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
for _, node in ipairs(redis.call('HVALS', KEYS[1])) do
  if node == ARGV[2] then return 0 end
end
redis.call('SREM', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1]: node set; KEYS[2..n]: user hashes. ARGV[1]: node id; ARGV[2..n]: the user ids
# (in KEYS order). Drops every field naming the node from each hash, and each user from the
# node's set.
_FORGET = """
for i = 2, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    if flat[j + 1] == ARGV[1] then redis.call('HDEL', KEYS[i], flat[j]) end
  end
  redis.call('SREM', KEYS[1], ARGV[i])
end
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """What `open` read right after recording the session."""

    sessions: int  # the user's recorded sessions, this one included
    # The cached token watermark (0 when none is cached but the cache is marked complete);
    # None when none is cached: Postgres must answer.
    watermark: int | None
    presence: PresenceSnapshot  # the user's presence record


class RedisSessionRecords:
    def __init__(self, client: redis.Redis, key_prefix: str, *,
                 ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._client = client
        self._users = f"{key_prefix}sessions:"
        self._nodes = f"{key_prefix}node-users:"
        self._ttl = math.ceil(ttl)
        # Registered once: calls go by EVALSHA, reloading a script if Redis lost it.
        self._add = client.register_script(_ADD)
        self._open = client.register_script(_OPEN)
        self._remove = client.register_script(_REMOVE)
        self._forget = client.register_script(_FORGET)

    def _user_key(self, user_id: str) -> str:
        return self._users + user_id

    def _node_key(self, node_id: str) -> str:
        return self._nodes + node_id

    async def add(self, user_id: str, session_id: str, node_id: str) -> None:
        try:
            await self._add(keys=[self._user_key(user_id), self._node_key(node_id)],
                            args=[session_id, node_id, user_id, self._ttl])
        except (RedisError, OSError) as exc:
            raise StorageError(f"session of {user_id} not recorded: {exc}") from exc

    async def open(self, user_id: str, session_id: str, node_id: str, *,
                   watermark_key: str, complete_key: str,
                   presence_key: str) -> OpenedSession:
        """`add`, then read what the gateway needs next (see the module docstring).
        `watermark_key` and `complete_key`: RedisWatermarkCache's `key` and `complete_key`."""
        try:
            count, fields, watermark = await self._open(
                keys=[self._user_key(user_id), self._node_key(node_id), watermark_key,
                      presence_key, complete_key],
                args=[session_id, node_id, user_id, self._ttl, *SNAPSHOT_FIELDS])
        except (RedisError, OSError) as exc:
            raise StorageError(f"session of {user_id} not recorded: {exc}") from exc
        return OpenedSession(sessions=int(count), watermark=parse_watermark(watermark),
                             presence=parse_snapshot(fields))

    async def remove(self, user_id: str, session_id: str, node_id: str) -> None:
        try:
            await self._remove(keys=[self._user_key(user_id), self._node_key(node_id)],
                               args=[session_id, node_id, user_id])
        except (RedisError, OSError) as exc:
            raise StorageError(f"session of {user_id} not removed: {exc}") from exc

    async def of_user(self, user_id: str) -> dict[str, str]:
        try:
            fields = await self._client.hgetall(self._user_key(user_id))
        except (RedisError, OSError) as exc:
            raise StorageError(f"sessions of {user_id} not read: {exc}") from exc
        return {_text(sid): _text(node) for sid, node in fields.items()}

    async def users_on(self, node_id: str) -> set[str]:
        try:
            # SSCAN rather than SMEMBERS: a node may hold many users, and Redis should not
            # block on one huge reply.
            return {_text(user) async for user in
                    self._client.sscan_iter(self._node_key(node_id), count=1000)}
        except (RedisError, OSError) as exc:
            raise StorageError(f"users of node {node_id} not read: {exc}") from exc

    async def forget_node(self, node_id: str) -> set[str]:
        # A snapshot of the node's users, then one short script per batch: a user recorded
        # on the node after the snapshot was recorded by a node that is alive after all, and
        # is rightly kept.
        users = await self.users_on(node_id)
        try:
            for batch in _batches(sorted(users), _FORGET_BATCH):
                await self._forget(
                    keys=[self._node_key(node_id), *map(self._user_key, batch)],
                    args=[node_id, *batch])
        except (RedisError, OSError) as exc:
            raise StorageError(f"sessions of node {node_id} not forgotten: {exc}") from exc
        return users


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
