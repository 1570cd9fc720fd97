"""In-memory twins of the CallActor's ports (actors/ports.py) for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from protocols.call_messages import CallConflict, CallRecord, UserBusy


class MemoryCallStore:
    """CallStore with the same version fence and busy fence as the Postgres adapter."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.calls: dict[str, CallRecord] = {}  # as stored, with their stored version
        self.alive: dict[str, datetime] = {}
        self.saves = 0
        self.conflicts = 0  # saves refused by the version fence

    def _live_joined(self, user_id: str, other_than: str) -> bool:
        now = datetime.fromtimestamp(self._now(), UTC)
        return any(
            call_id != other_than and call.state != "ended" and self.alive[call_id] > now
            and any(p.user_id == user_id and p.state == "joined" for p in call.participants)
            for call_id, call in self.calls.items())

    async def load(self, call_id: str) -> CallRecord | None:
        return self.calls.get(call_id)

    async def save(self, record: CallRecord, alive_until: datetime) -> int:
        stored = self.calls.get(record.id)
        # Insert (version 0) only when new, update only from the stored version; the
        # version fence is checked before the busy fence, as in Postgres.
        if (stored.version if stored is not None else 0) != record.version:
            self.conflicts += 1
            raise CallConflict(record.id)
        if record.state != "ended":
            for p in record.participants:
                if p.state == "joined" and self._live_joined(p.user_id, record.id):
                    raise UserBusy(p.user_id)
        version = record.version + 1
        self.calls[record.id] = msgspec.structs.replace(record, version=version)
        self.alive[record.id] = alive_until
        self.saves += 1
        return version

    async def touch(self, call_id: str, alive_until: datetime) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.state != "ended":
            self.alive[call_id] = alive_until

    async def busy(self, user_ids: list[str], call_id: str) -> set[str]:
        return {u for u in user_ids if self._live_joined(u, call_id)}

    async def live_calls_on(self, node_id: str) -> list[str]:
        return sorted(call_id for call_id, call in self.calls.items()
                      if call.state != "ended" and any(
                          p.state == "joined" and p.device_node == node_id
                          for p in call.participants))


@dataclass
class FakeDirectory:
    rooms: dict[str, list[str]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    blocks: set[frozenset[str]] = field(default_factory=set)
    direct: dict[frozenset[str], str] = field(default_factory=dict)

    async def room_members(self, room_id: str) -> list[str] | None:
        return self.rooms.get(room_id)

    async def reachable(self, caller_id: str, user_ids: list[str]) -> set[str]:
        return {u for u in user_ids
                if u in self.users and frozenset((caller_id, u)) not in self.blocks}

    async def direct_room(self, user_a: str, user_b: str) -> str:
        key = frozenset((user_a, user_b))
        if key not in self.direct:
            room_id = f"0190a0b0-0000-7000-8000-{len(self.direct) + 1:012d}"
            self.direct[key] = room_id
            self.rooms[room_id] = sorted(key)
        return self.direct[key]


@dataclass
class Emits:
    """Every emit of the Broadcaster and SessionEmitter ports, in order, as (target, event,
    data) where target is "user:<id>", "session:<sid>" or "user:<id>-<sid>" (all but sid)."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append((f"room:{room_id}", event, data))

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append((f"user:{user_id}", event, data))

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append((f"watchers:{user_id}", event, data))

    async def to_session(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        self.sent.append((f"session:{session_id}", event, data))

    async def to_user_except(self, user_id: str, session_id: str, event: str,
                             data: dict[str, Any]) -> None:
        self.sent.append((f"user:{user_id}-{session_id}", event, data))

    def to(self, target: str, event: str | None = None) -> list[dict[str, Any]]:
        return [d for t, e, d in self.sent if t == target and (event is None or e == event)]

    def events(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t, d) for t, e, d in self.sent if e == event]


@dataclass
class FakeEffects:
    missed_calls: list[tuple[str, list[str]]] = field(default_factory=list)
    ended_calls: list[CallRecord] = field(default_factory=list)

    async def missed(self, record: CallRecord, user_ids: list[str]) -> None:
        self.missed_calls.append((record.id, list(user_ids)))

    async def ended(self, record: CallRecord) -> None:
        self.ended_calls.append(record)
