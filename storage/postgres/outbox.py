"""Writing domain events to the transactional outbox.

Call `append_events` with the connection of the transaction that makes the change, so the event
exists exactly when the change does. The relay publishes it afterwards (at least once).

Each row also keeps the W3C `traceparent` of the trace it was written in (OpenTelemetry's
current span, when tracing is on and the write happens inside a trace; else NULL), which the
relay hands to the event bus so consumers continue the trace (server/events/relay.py).
"""

from __future__ import annotations

import asyncpg
import msgspec
from opentelemetry import trace

from protocols.events import EVENT_TYPES, EventEnvelope

# Relays LISTEN on this channel to wake as soon as a transaction with events commits.
OUTBOX_CHANNEL = "hubbub_outbox"


def current_traceparent() -> str | None:
    """The current OpenTelemetry span context as a W3C traceparent; None when there is none
    (tracing off: the API's no-op span is never valid)."""
    span = trace.get_current_span()
    if span is trace.INVALID_SPAN:  # the common case with tracing off: answer it cheaply
        return None
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def append_events(conn: asyncpg.Connection, *events: EventEnvelope) -> None:
    """Insert events into the outbox inside the caller's transaction and wake the relays.

    NOTIFY is transactional: it is delivered on commit and dropped on rollback.
    """
    if not events:
        return
    traceparent = current_traceparent()
    await conn.executemany(
        "INSERT INTO outbox (event_id, topic, key, type, envelope, traceparent)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(e.id, EVENT_TYPES[e.type].TOPIC, e.key, e.type, msgspec.to_builtins(e), traceparent)
         for e in events],
    )
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")

