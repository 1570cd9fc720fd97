"""Postgres `DeadLetters` (storage.event_delivery): the dead_letter_events table."""

from __future__ import annotations

import asyncpg
import msgspec

from protocols.events import EventEnvelope

_PARK = """
INSERT INTO dead_letter_events (consumer, event_id, type, envelope, error, attempts)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (consumer, event_id) DO UPDATE
SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, dead_lettered_at = now()
"""


class PostgresDeadLetters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def park(self, consumer: str, event: EventEnvelope, *, error: str,
                   attempts: int) -> None:
        await self._pool.execute(_PARK, consumer, event.id, event.type,
                                 msgspec.to_builtins(event), error, attempts)
