"""What the gateway knows about each socket on this node, and the gateway's shared state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

import socketio

from actors.ports import PresenceStore, UnreadNotifications
from actors.system import ActorSystem
from server.auth.principal import Principal
from server.gateway.deadlines import Deadline, Deadlines
from server.gateway.limits import TokenBucket
from server.gateway.ports import PresenceVisibility, RoomChannels, SessionRecords

log = logging.getLogger("hubbub.gateway")


class Connection:
    """One authenticated socket. Owned by the gateway on the node holding the socket.

    Its sets are made on first use: most sockets never watch anyone's presence nor take part
    in a call, and an empty set costs 216 bytes per socket."""

    __slots__ = ("_calls", "_rooms", "_watching", "bucket", "expires_at", "expiry", "sid",
                 "user_id")

    def __init__(self, sid: str, user_id: str, expires_at: int, bucket: TokenBucket) -> None:
        self.sid = sid
        self.user_id = user_id
        self.expires_at = expires_at  # unix seconds: closed then unless refreshed
        self.bucket = bucket
        # When the token expires (server/gateway/session.py), while the socket is held.
        self.expiry: Deadline[Connection] | None = None
        self._rooms: set[str] | None = None
        self._watching: set[str] | None = None
        self._calls: set[str] | None = None

    def __repr__(self) -> str:
        return f"Connection(sid={self.sid!r}, user_id={self.user_id!r})"

    @property
    def rooms(self) -> set[str]:
        """Chat rooms joined through room:join."""
        if self._rooms is None:
            self._rooms = set()
        return self._rooms

    @property
    def watching(self) -> set[str]:
        """Users whose presence it receives."""
        if self._watching is None:
            self._watching = set()
        return self._watching

    def take_watching(self) -> frozenset[str] | set[str]:
        """The users it watched, forgotten (the socket is gone)."""
        watching, self._watching = self._watching, None
        return watching or frozenset()

    @property
    def calls(self) -> set[str]:
        """Calls it invited or accepted (CallActor)."""
        if self._calls is None:
            self._calls = set()
        return self._calls


@dataclass(eq=False)
class Gateway:
    """The gateway's state on one node. Ports are filled in at startup (after the database,
    Redis and auth contexts); no event arrives before the server listens.

    `sessions_store` holds the session records of every node (this node writes those of its
    own sockets); the cluster wiring calls its `users_on` / `forget_node`. `live_nodes`
    answers the ids of the nodes in the current live cluster view; None means a single node
    (only `node_id` exists)."""

    sio: socketio.AsyncServer
    system: ActorSystem
    node_id: str
    events_per_second: float
    event_burst: int
    connections: dict[str, Connection] = field(default_factory=dict)
    authenticate: Callable[[str], Principal] | None = None
    presence: PresenceStore | None = None
    sessions_store: SessionRecords | None = None
    live_nodes: Callable[[], Collection[str]] | None = None
    # (user id, socket id) of closed sockets whose record could not be removed: retried by
    # server.gateway.session.sweep, so a Redis hiccup does not keep a user online.
    unremoved: set[tuple[str, str]] = field(default_factory=set)
    unread: UnreadNotifications | None = None
    visibility: PresenceVisibility | None = None
    # With REDIS_URL: the chat rooms' channels between nodes; this node holds a room's while
    # one of its sockets is in the room (chat.join / chat.leave / the socket's close).
    room_channels: RoomChannels | None = None
    # The token expiry of every socket (server/gateway/session.py makes it on first use).
    expiries: Deadlines[Connection] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run `coro` in a task the gateway tracks (cancelled and awaited at shutdown)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task %s failed", task.get_name(), exc_info=task.exception())

    async def stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
