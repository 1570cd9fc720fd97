"""Writing domain events to the transactional outbox.

Call `append_events` with the connection of the transaction that makes the change, so the event
exists exactly when the change does. The relay publishes it afterwards (at least once).
"""

from __future__ import annotations

import asyncpg
import msgspec

from protocols.events import EVENT_TYPES, EventEnvelope

# Relays LISTEN on this channel to wake as soon as a transaction with events commits.
OUTBOX_CHANNEL = "hubbub_outbox"


async def append_events(conn: asyncpg.Connection, *events: EventEnvelope) -> None:
    """Insert events into the outbox inside the caller's transaction and wake the relays.

    NOTIFY is transactional: it is delivered on commit and dropped on rollback.
    """
    if not events:
        return
    await conn.executemany(
        "INSERT INTO outbox (event_id, topic, key, type, envelope) VALUES ($1, $2, $3, $4, $5)",
        [(e.id, EVENT_TYPES[e.type].TOPIC, e.key, e.type, msgspec.to_builtins(e))
         for e in events],
    )
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")

