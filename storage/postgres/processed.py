"""Exactly-once effects for at-least-once consumers."""

from __future__ import annotations

import asyncpg


async def claim_event(conn: asyncpg.Connection, consumer: str, event_id: str) -> bool:
    """Record that `consumer` applied `event_id`; False when it already had.

    Call inside the transaction that applies the effect: the claim commits or rolls back with
    it, so a redelivered event finds the row and the effect is never applied twice.
    """
    inserted = await conn.fetchval(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true", consumer, event_id,
    )
    return bool(inserted)
