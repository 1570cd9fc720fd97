"""Dead letters in a dict: the in-memory `DeadLetters` (storage.event_delivery) for tests and
for buses run without a database."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.events import EventEnvelope


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    event: EventEnvelope
    error: str
    attempts: int


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.parked: dict[tuple[str, str], DeadLetter] = {}

    async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                   attempts: int) -> None:
        self.parked[consumer, event.id] = DeadLetter(consumer, event, error, attempts)
