"""Session records in dicts: the in-process `SessionRecords` (server/gateway/ports.py) for a
single node (no REDIS_URL). Same contract as storage/redis/sessions.py, checked by one shared
test suite: a user's sessions (socket id -> node id) and each node's users, both expiring
`ttl` seconds after the last add touching them."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")
DEFAULT_TTL = 7 * 24 * 3600.0


class MemorySessionRecords:
    """Entries are kept in the order of their last add, and every add pushes its expiry
    `ttl` ahead, so expiries are in order too and forgetting expired entries is a walk from
    the front. `clock` is in seconds (wall clock by default, like Redis' TTLs)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self._clock = clock
        self._ttl = ttl
        # user id -> (sessions: socket id -> node id, expires at)
        self._users: OrderedDict[str, tuple[dict[str, str], float]] = OrderedDict()
        # node id -> (users with a session recorded on it, expires at)
        self._nodes: OrderedDict[str, tuple[set[str], float]] = OrderedDict()

    async def add(self, user_id: str, session_id: str, node_id: str) -> None:
        now = self._clock()
        expires = now + self._ttl
        self._forget_expired(now)
        sessions = _live(self._users, user_id, now) or {}
        sessions[session_id] = node_id
        self._users[user_id] = (sessions, expires)
        self._users.move_to_end(user_id)
        users = _live(self._nodes, node_id, now) or set()
        users.add(user_id)
        self._nodes[node_id] = (users, expires)
        self._nodes.move_to_end(node_id)

    async def remove(self, user_id: str, session_id: str, node_id: str) -> None:
        now = self._clock()
        sessions = _live(self._users, user_id, now)
        if sessions is not None:
            if sessions.get(session_id) == node_id:
                del sessions[session_id]
            if node_id in sessions.values():
                return  # another session of theirs is still recorded on that node
            if not sessions:
                del self._users[user_id]  # as Redis drops an empty hash
        users = _live(self._nodes, node_id, now)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._nodes[node_id]

    async def of_user(self, user_id: str) -> dict[str, str]:
        return dict(_live(self._users, user_id, self._clock()) or {})

    async def users_on(self, node_id: str) -> set[str]:
        return set(_live(self._nodes, node_id, self._clock()) or ())

    async def forget_node(self, node_id: str) -> set[str]:
        now = self._clock()
        users = _live(self._nodes, node_id, now) or set()
        self._nodes.pop(node_id, None)
        for user_id in users:
            sessions = _live(self._users, user_id, now)
            if sessions is None:
                continue
            for sid in [sid for sid, node in sessions.items() if node == node_id]:
                del sessions[sid]
            if not sessions:
                del self._users[user_id]
        return set(users)

    def _forget_expired(self, now: float) -> None:
        for entries in (self._users, self._nodes):
            while entries:
                key, (_, expires) = next(iter(entries.items()))
                if expires > now:
                    break
                del entries[key]


def _live(entries: OrderedDict[K, tuple[V, float]], key: K, now: float) -> V | None:
    """The value under `key` unless it expired (an expired entry is dropped)."""
    entry = entries.get(key)
    if entry is None:
        return None
    if entry[1] <= now:
        del entries[key]
        return None
    return entry[0]
