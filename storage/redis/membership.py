"""actors.membership.MembershipStore in Redis: one sorted set of live nodes and a version.

`<prefix>cluster:nodes` holds each node id scored by the instant (ms, Redis's own clock, so
the nodes' clocks do not matter) until which it counts as alive; `<prefix>cluster:version`
counts changes. One Lua script per call does everything atomically: drop the expired nodes
(returned to this caller only, so exactly one node cleans up after each dead one), announce
or remove the caller, bump the version when the set of nodes changed, and read the view.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from protocols.cluster import Beat, View

# KEYS: nodes zset, version key. ARGV: node id, timeout ms, mode (first|beat|leave).
# Returns {version, live nodes, expired nodes, rejoined (0/1)}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, timeout, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local changed = false
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  changed = true
end
local rejoined = 0
if mode == 'leave' then
  if redis.call('ZREM', KEYS[1], node) == 1 then changed = true end
else
  if redis.call('ZADD', KEYS[1], now + timeout, node) == 1 then
    changed = true
    if mode ~= 'first' then rejoined = 1 end
  end
end
if changed then redis.call('INCR', KEYS[2]) end
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
return {version, redis.call('ZRANGE', KEYS[1], 0, -1), dead, rejoined}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisMembershipStore:
    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._client = client
        self._keys = [f"{key_prefix}cluster:nodes", f"{key_prefix}cluster:version"]
        self._script = client.register_script(_SCRIPT)

    async def _call(self, node_id: str, timeout: float, mode: str) -> Beat:
        version, live, dead, rejoined = await self._script(
            keys=self._keys, args=[node_id, int(timeout * 1000), mode])
        # A node that beat before it was found expired is alive: never report it dead.
        alive = {_text(n) for n in live}
        return Beat(view=View.of(int(version), alive),
                    dead=tuple(sorted({_text(n) for n in dead} - alive)),
                    rejoined=bool(rejoined))

    async def beat(self, node_id: str, timeout: float, *, first: bool = False) -> Beat:
        return await self._call(node_id, timeout, "first" if first else "beat")

    async def leave(self, node_id: str) -> Beat:
        return await self._call(node_id, 0, "leave")
