"""The group commit's statement: one round trip that numbers a batch of chat messages, stores
them and writes their `message.sent` events to the outbox, in one implicit transaction
(storage/postgres/message_batches.py decides what goes in a batch and when).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from protocols.chat import Message
from protocols.events import EventEnvelope, MessageSent, envelope
from storage.postgres.outbox import OUTBOX_CHANNEL

# $1: the messages as a JSON array of _Row (no seq: the statement gives it), each with its
# `message.sent` envelope (a placeholder seq) and its rank in the batch; $2, $3: the event's
# topic and type; $4 the row's traceparent; $5 whether to wake the relays (the batcher's
# NOTIFY_EVERY).
# One JSON text, encoded by msgspec in C, rather than ten arrays, which asyncpg encodes
# element by element in Python (two abc isinstance checks each): 50-100 us less of the
# node's CPU per batch of four, 200-400 us per batch of twenty. Postgres parses the JSON for
# about as much as the arrays at four, 10-15 us more per message at twenty: work moved off the
# node's one core.
# `fresh` drops resends; `numbered` gives the seqs. Both probe `messages` once per message,
# through its unique indexes (client key; (room_id, seq) read backwards), written as scalar
# subqueries so that the planner cannot turn them into joins that read the whole table. The
# new messages' events go to the outbox as ONE row (a JSON array, each event with its seq
# set; the relay publishes each with its own key): a row per message cost an insert here and
# an update in the relay each. A row has one traceparent: that of the batch's first message
# sent inside a trace (NULL with tracing off); the other events of the batch are published in
# that trace too. The final SELECT reads `wake` so that its pg_notify runs (a SELECT-only CTE
# runs only when referenced), once per batch that stored anything; NOTIFY is delivered on
# commit.
APPEND_BATCH = f"""
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb)
        AS t (id uuid, room_id uuid, sender_id uuid, client_id text, text text, kind text,
              created_at timestamptz, event_id uuid, event_key text, event jsonb, ord bigint)
), fresh AS (
    SELECT DISTINCT ON (i.room_id, i.sender_id, i.client_id) i.* FROM input i
    WHERE (SELECT 1 FROM messages m
           WHERE m.room_id = i.room_id AND m.sender_id = i.sender_id
             AND m.client_id = i.client_id LIMIT 1) IS NULL
    ORDER BY i.room_id, i.sender_id, i.client_id, i.ord
), numbered AS (
    SELECT f.*, COALESCE((SELECT m.seq FROM messages m WHERE m.room_id = f.room_id
                          ORDER BY m.seq DESC LIMIT 1), 0)
                + row_number() OVER (PARTITION BY f.room_id ORDER BY f.ord) AS seq
    FROM fresh f
), msg AS (
    INSERT INTO messages (id, room_id, seq, sender_id, client_id, text, kind, created_at)
    SELECT id, room_id, seq, sender_id, client_id, text, kind, created_at FROM numbered
    RETURNING id, seq
), events AS (
    INSERT INTO outbox (event_id, topic, key, type, envelope, traceparent)
    SELECT (array_agg(n.event_id ORDER BY n.room_id, n.seq))[1], $2,
           (array_agg(n.event_key ORDER BY n.room_id, n.seq))[1], $3,
           jsonb_agg(jsonb_set(n.event, '{{data,seq}}', to_jsonb(n.seq))
                     ORDER BY n.room_id, n.seq), $4::text
    FROM numbered n
    HAVING count(*) > 0
), wake AS (
    SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM (SELECT 1 FROM numbered LIMIT 1) stored
    WHERE $5::bool
)
SELECT id, seq FROM msg WHERE (SELECT count(*) FROM wake) >= 0
"""
# For the batcher's connection. The batch statement's probes of `messages` (resend? the
# room's last seq?) must be index probes whatever the planner thinks of the table's size: a
# plan made while it was small (a new database) scanned it, ever slower as it grew (12 ms per
# batch at 36,000 rows). One plan serves every batch: planning it afresh each time cost more
# than running it. RESET ALL, when the pool takes the connection back, undoes both.
CONNECTION_SETUP = "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan"
_encode = msgspec.json.Encoder().encode


class _Row(msgspec.Struct, frozen=True):
    """One message of a batch as the statement reads it ($1, jsonb_to_recordset)."""

    id: str
    room_id: str
    sender_id: str
    client_id: str
    text: str
    kind: str
    created_at: datetime
    event_id: str
    event_key: str
    event: EventEnvelope  # its `message.sent`, seq 0 until the statement sets it
    ord: int  # its rank in the batch: a room's seqs follow it


async def append_batch(conn: Any, messages: list[Message], traceparent: str | None,
                       wake: bool) -> dict[str, int]:
    """Run the statement on `conn` (set up with CONNECTION_SETUP); the seq of each message
    stored, by message id (a resend has none). `wake`: NOTIFY the outbox relays."""
    events = [envelope(MessageSent(
        message_id=m.id, room_id=m.room_id, seq=0, sender_id=m.sender_id,
        created_at=m.created_at), actor_id=m.sender_id, occurred_at=m.created_at)
        for m in messages]
    batch = _encode([_Row(m.id, m.room_id, m.sender_id, m.client_id, m.text, m.kind,
                          m.created_at, e.id, e.key, e, rank)
                     for rank, (m, e) in enumerate(zip(messages, events, strict=True), 1)])
    rows = await conn.fetch(APPEND_BATCH, batch.decode(), MessageSent.TOPIC, MessageSent.TYPE,
                            traceparent, wake)
    return {str(r["id"]): r["seq"] for r in rows}
