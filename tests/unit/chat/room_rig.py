"""A RoomActor on in-memory ports and a manual clock, for the chat unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio

from actors.actor import ActorContext
from actors.clock import ManualClock
from actors.ref import ActorRef
from actors.room import RoomActor, RoomPorts
from actors.system import ActorSystem
from protocols.chat import Message
from protocols.ids import new_id
from protocols.room_messages import SendMessage
from storage.memory.chat_history import MemoryChatHistory
from tests.unit.chat.fakes import (
    ChatWorld,
    FakePresence,
    MemoryRoomStore,
    RecordingBroadcaster,
    RecordingNotifier,
    RecordingRoomSockets,
)


@dataclass
class Rig:
    world: ChatWorld = field(default_factory=ChatWorld)
    clock: ManualClock = field(default_factory=ManualClock)
    broadcaster: RecordingBroadcaster = field(default_factory=RecordingBroadcaster)
    presence: FakePresence = field(default_factory=FakePresence)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    sockets: RecordingRoomSockets = field(default_factory=RecordingRoomSockets)
    history: Any = None
    actor_class: type[RoomActor] = RoomActor
    instances: list[RoomActor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = MemoryRoomStore(self.world)
        if self.history is None:
            self.history = MemoryChatHistory(clock=self.clock.time)
        self.system = ActorSystem(clock=self.clock)

        def factory(key: str, context: ActorContext) -> RoomActor:
            actor = self.actor_class(key, context, RoomPorts(
                store=self.store, history=self.history, broadcaster=self.broadcaster,
                presence=self.presence, notifier=self.notifier, sockets=self.sockets))
            self.instances.append(actor)
            return actor

        self.system.register(self.actor_class, factory)

    def room(self, members: list[str], owner: str | None = None) -> ActorRef:
        room_id = new_id()
        self.world.add_room(room_id, members, owner=owner)
        return self.system.ref(self.actor_class, room_id)

    def stored_seqs(self, ref: ActorRef) -> list[int]:
        return sorted(self.world.rooms[ref.key].messages)


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.system.stop()


def users(n: int) -> list[str]:
    return [new_id() for _ in range(n)]


async def send(ref: ActorRef, user: str, client_id: str, text: str = "hi") -> Message:
    return await ref.ask(SendMessage(user_id=user, client_id=client_id, text=text), timeout=5)


def pushed_seqs(rig: Rig) -> list[int]:
    return [d["message"]["seq"] for _, e, d in rig.broadcaster.room_events
            if e == "message:new"]
