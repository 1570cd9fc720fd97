"""Presence: what a user's UserActor records about their connection state, and how a reader
turns that record into the status others see.

The UserActor is the only writer of a user's record. A node that dies cannot say its users
went away, so every record carries `alive_until`: the actor pushes it forward with a
heartbeat while the user has sessions, and a reader treats a record whose `alive_until` has
passed as offline since then.

The record holds no sessions: which sockets a user has, on which node, is kept in per-node
session records written by the node holding each socket (server/gateway/ports.py
SessionRecords), so two activations of one UserActor during a view change cannot overwrite
each other's view of the sessions.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# What a user may choose for themselves while connected.
ChosenStatus = Literal["online", "away", "dnd"]
PresenceStatus = Literal["online", "away", "dnd", "offline"]


class PresenceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One user's presence as stored. Times are unix seconds."""

    status: PresenceStatus
    # When the user was last connected; None while never seen or still connected.
    last_seen_at: float | None = None
    # After this instant the record is stale (its node stopped heartbeating): offline.
    alive_until: float = 0.0


class EffectivePresence(msgspec.Struct, frozen=True, kw_only=True):
    status: PresenceStatus
    last_seen_at: float | None


def effective(record: PresenceRecord | None, now: float) -> EffectivePresence:
    """The status others see at `now`: a missing record is offline and never seen; a stale
    one is offline since its `alive_until`."""
    if record is None:
        return EffectivePresence(status="offline", last_seen_at=None)
    if record.status != "offline" and record.alive_until <= now:
        return EffectivePresence(status="offline", last_seen_at=record.alive_until)
    return EffectivePresence(status=record.status, last_seen_at=record.last_seen_at)
