"""Small actors and an in-memory store for runtime tests (no I/O)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from actors.actor import Actor, ActorContext
from actors.errors import Rejected


@dataclass
class CounterStore:
    """What a real port would persist: the counter value per key, and call counts."""

    values: dict[str, int] = field(default_factory=dict)
    loads: int = 0
    saves: int = 0

    async def load(self, key: str) -> int:
        self.loads += 1
        return self.values.get(key, 0)

    async def save(self, key: str, value: int) -> None:
        self.saves += 1
        self.values[key] = value


@dataclass(frozen=True)
class Add:
    amount: int


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Record:
    sender: int
    seq: int


@dataclass(frozen=True)
class Boom:
    pass


@dataclass(frozen=True)
class Refuse:
    pass


@dataclass(frozen=True)
class Block:
    gate: asyncio.Event
    entered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Later:
    delay: float
    message: Any


class CounterActor(Actor):
    """Keeps a counter, persisted on every change (so a restart loses nothing)."""

    def __init__(self, key: str, context: ActorContext, store: CounterStore) -> None:
        super().__init__(key, context)
        self.store = store
        self.value = 0
        self.seen: list[Record] = []
        self.stopped = False

    async def on_start(self) -> None:
        self.value = await self.store.load(self.key)

    async def receive(self, message: Any) -> Any:
        match message:
            case Add(amount):
                self.value += amount
                await self.store.save(self.key, self.value)
                return self.value
            case Get():
                return self.value
            case Record():
                self.seen.append(message)
                return len(self.seen)
            case Boom():
                self.value = -999  # corrupt in-memory state, never saved
                raise RuntimeError("boom")
            case Refuse():
                raise Rejected("not_allowed", "refused on purpose")
            case Block(gate, entered):
                entered.set()
                await gate.wait()
                return "unblocked"
            case Later(delay, inner):
                self.context.schedule(delay, inner)
                return "scheduled"
        raise ValueError(f"unexpected {message!r}")

    async def on_stop(self) -> None:
        self.stopped = True
