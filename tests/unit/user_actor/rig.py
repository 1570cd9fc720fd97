"""A UserActor on a ManualClock and in-memory ports, for the UserActor unit tests.

The fake directory plays the session records: the harness records a session before it tells
SessionOpened and removes it before SessionClosed, as the gateway does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.clock import ManualClock
from actors.system import ActorSystem
from actors.user import UserActor
from protocols.socket import PresenceEvent
from protocols.user_messages import (
    GetPresence,
    SessionClosed,
    SessionOpened,
)
from storage.memory.presence import MemoryPresenceStore

GRACE = 10.0
USER = "0190a0b0-0000-7000-8000-00000000000a"


@dataclass
class FakeBroadcaster:
    sent: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("room", room_id, event, data))

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("user", user_id, event, data))

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append(("watchers", user_id, event, data))

    def presence(self) -> list[dict[str, Any]]:
        return [d for kind, _, event, d in self.sent if kind == "watchers" and event == "presence"]

    def to_user_events(self, event: str) -> list[dict[str, Any]]:
        return [d for kind, _, e, d in self.sent if kind == "user" and e == event]


@dataclass
class FakeUnread:
    count: int = 0

    async def unread_count(self, user_id: str) -> int:
        return self.count


@dataclass
class FakeDirectory:
    """SessionDirectory over a dict of records: user -> socket id -> node."""

    records: dict[str, dict[str, str]] = field(default_factory=dict)
    live: set[str] | None = None  # nodes in the view; None: every node is live
    failing: bool = False
    reads: int = 0

    def add(self, user_id: str, session_id: str, node_id: str) -> None:
        self.records.setdefault(user_id, {})[session_id] = node_id

    def remove(self, user_id: str, session_id: str) -> None:
        self.records.get(user_id, {}).pop(session_id, None)

    async def sessions(self, user_id: str) -> dict[str, str]:
        self.reads += 1
        if self.failing:
            raise ConnectionError("redis is down")
        return {sid: node for sid, node in self.records.get(user_id, {}).items()
                if self.live is None or node in self.live}


class FailingStore(MemoryPresenceStore):
    async def save(self, user_id: str, record: Any) -> None:
        raise ConnectionError("redis is down")


@dataclass
class Harness:
    clock: ManualClock
    store: MemoryPresenceStore
    broadcaster: FakeBroadcaster
    unread: FakeUnread
    directory: FakeDirectory
    system: ActorSystem

    def ref(self, user_id: str = USER) -> Any:
        return self.system.ref(UserActor, user_id)

    async def open(self, session_id: str, node_id: str = "n1", user_id: str = USER) -> None:
        self.directory.add(user_id, session_id, node_id)
        await self.ref(user_id).tell(SessionOpened(session_id=session_id, node_id=node_id))

    async def close(self, session_id: str, user_id: str = USER) -> None:
        self.directory.remove(user_id, session_id)
        await self.ref(user_id).tell(SessionClosed(session_id=session_id))

    async def advance(self, seconds: float) -> None:
        await self.system.settled()  # timers are set while handling earlier tells
        self.clock.advance(seconds)
        await self.system.settled()

    async def status(self, user_id: str = USER) -> PresenceEvent:
        return await self.ref(user_id).ask(GetPresence())


def build(clock: ManualClock | None = None, store: MemoryPresenceStore | None = None,
          idle_timeout: float = 300.0, directory: FakeDirectory | None = None) -> Harness:
    clock = clock or ManualClock()
    store = store or MemoryPresenceStore(clock=clock.time)
    broadcaster = FakeBroadcaster()
    unread = FakeUnread()
    directory = directory or FakeDirectory()
    system = ActorSystem(clock=clock, idle_timeout=idle_timeout)
    system.register(UserActor, lambda key, ctx: UserActor(
        key, ctx, presence=store, broadcaster=broadcaster, unread=unread,
        directory=directory, grace=GRACE))
    return Harness(clock, store, broadcaster, unread, directory, system)
