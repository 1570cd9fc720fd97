"""Postgres adapter of actors.ports.CallStore: calls and their participants (0009_calls.sql,
0010_call_fencing.sql).

A save writes the whole call in one transaction, fenced twice:
- Version fence: an insert (record.version 0) writes only if the id is new; an update only if
  the stored version is the one the record was derived from, and bumps it. Two activations of
  one CallActor (during a cluster membership change) thus cannot both write on one state: the
  loser gets CallConflict and nothing of its save is written.
- Busy fence: for each participant joined in this save, a transaction-scoped advisory lock on
  the user (taken in a fixed order, so two saves never deadlock), then a check that they are not
  joined in another call that has not ended and is still alive. Two calls accepted at once by
  one user thus serialise on the lock, and the second sees the first committed.
The advisory locks come before any row lock, so the calls row lock taken by the version fence
cannot be part of a wait cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from protocols.call_messages import CallConflict, CallParticipant, CallRecord, UserBusy

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('hubbub.call-user:' || $1, 0))"
_JOINED_ELSEWHERE = """
SELECT p.user_id FROM call_participants p JOIN calls c ON c.id = p.call_id
WHERE p.user_id = ANY($1::uuid[]) AND p.state = 'joined' AND c.id <> $2
  AND c.state <> 'ended' AND c.alive_until > now()
"""
_INSERT_CALL = """
INSERT INTO calls (id, room_id, kind, media, state, initiator_id, created_at, answered_at,
                   ended_at, end_reason, alive_until, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)
ON CONFLICT (id) DO NOTHING
RETURNING version
"""
# Under READ COMMITTED a concurrent update of the same row makes this one re-check its WHERE on
# the committed row: of two saves from one version exactly one matches.
_UPDATE_CALL = """
UPDATE calls SET state = $2, answered_at = $3, ended_at = $4, end_reason = $5,
    alive_until = $6, version = version + 1
WHERE id = $1 AND version = $7
RETURNING version
"""
_UPSERT_PARTICIPANTS = """
INSERT INTO call_participants (call_id, user_id, position, state, device_id, device_node,
                               joined_at, left_at)
SELECT $1, x.user_id, x.position, x.state, x.device_id, x.device_node, x.joined_at, x.left_at
FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::timestamptz[])
     AS x (user_id, position, state, device_id, device_node, joined_at, left_at)
ON CONFLICT (call_id, user_id) DO UPDATE SET state = EXCLUDED.state,
    device_id = EXCLUDED.device_id, device_node = EXCLUDED.device_node,
    joined_at = EXCLUDED.joined_at, left_at = EXCLUDED.left_at
"""
_LOAD_CALL = """
SELECT id, room_id, kind, media, state, initiator_id, created_at, answered_at, ended_at,
       end_reason, version
FROM calls WHERE id = $1
"""
_LOAD_PARTICIPANTS = """
SELECT user_id, state, device_id, device_node, joined_at, left_at FROM call_participants
WHERE call_id = $1 ORDER BY position
"""
# A heartbeat keeps a live call alive; an ended call stays as it ended.
_TOUCH = "UPDATE calls SET alive_until = $2 WHERE id = $1 AND state <> 'ended'"
# alive_until is not checked: a call whose own node died too is still left behind by its
# participants (its new activation ends it).
_LIVE_ON_NODE = """
SELECT DISTINCT p.call_id FROM call_participants p JOIN calls c ON c.id = p.call_id
WHERE p.device_node = $1 AND p.state = 'joined' AND c.state <> 'ended'
ORDER BY p.call_id
"""


def _record(call: Mapping[str, Any], people: list[Mapping[str, Any]]) -> CallRecord:
    return CallRecord(
        id=call["id"], room_id=call["room_id"], kind=call["kind"], media=call["media"],
        state=call["state"], initiator_id=call["initiator_id"], created_at=call["created_at"],
        answered_at=call["answered_at"], ended_at=call["ended_at"],
        end_reason=call["end_reason"], version=call["version"],
        participants=[CallParticipant(user_id=p["user_id"], state=p["state"],
                                      device_id=p["device_id"], device_node=p["device_node"],
                                      joined_at=p["joined_at"], left_at=p["left_at"])
                      for p in people])


class PostgresCallStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, call_id: str) -> CallRecord | None:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True,
                                                                  isolation="repeatable_read"):
            call = await conn.fetchrow(_LOAD_CALL, call_id)
            if call is None:
                return None
            people = await conn.fetch(_LOAD_PARTICIPANTS, call_id)
        return _record(call, people)

    async def save(self, record: CallRecord, alive_until: datetime) -> int:
        """See actors.ports.CallStore.save: the new version, or CallConflict / UserBusy with
        nothing written (raising rolls the whole transaction back)."""
        people = record.participants
        joined = sorted({p.user_id for p in people if p.state == "joined"}) \
            if record.state != "ended" else []
        async with self._pool.acquire() as conn, conn.transaction():
            for user_id in joined:
                await conn.execute(_LOCK, user_id)
            version = await self._write_call(conn, record, alive_until)
            if joined:
                elsewhere = await conn.fetchval(_JOINED_ELSEWHERE, joined, record.id)
                if elsewhere is not None:
                    raise UserBusy(str(elsewhere))
            await conn.execute(
                _UPSERT_PARTICIPANTS, record.id, [p.user_id for p in people],
                list(range(len(people))), [p.state for p in people],
                [p.device_id for p in people], [p.device_node for p in people],
                [p.joined_at for p in people], [p.left_at for p in people])
        return version

    @staticmethod
    async def _write_call(conn: asyncpg.Connection, record: CallRecord,
                          alive_until: datetime) -> int:
        """The calls row, version-fenced; its new version or CallConflict."""
        if record.version == 0:
            version = await conn.fetchval(
                _INSERT_CALL, record.id, record.room_id, record.kind, record.media,
                record.state, record.initiator_id, record.created_at, record.answered_at,
                record.ended_at, record.end_reason, alive_until)
        else:
            version = await conn.fetchval(
                _UPDATE_CALL, record.id, record.state, record.answered_at, record.ended_at,
                record.end_reason, alive_until, record.version)
        if version is None:
            raise CallConflict(record.id)
        return int(version)

    async def touch(self, call_id: str, alive_until: datetime) -> None:
        await self._pool.execute(_TOUCH, call_id, alive_until)

    async def busy(self, user_ids: list[str], call_id: str) -> set[str]:
        rows = await self._pool.fetch(_JOINED_ELSEWHERE, user_ids, call_id)
        return {row["user_id"] for row in rows}

    async def live_calls_on(self, node_id: str) -> list[str]:
        """Ids of the calls not ended in which a participant is joined from a socket on
        `node_id` (for the dead-node reaper, which tells each call NodeLeft)."""
        rows = await self._pool.fetch(_LIVE_ON_NODE, node_id)
        return [str(row["call_id"]) for row in rows]
