"""The ports actors talk to the world through: small Protocols, implemented by adapters in
storage/ (Postgres, Redis, in-memory) and server/ (edges such as Socket.IO emits).

Each area adds its own ports here; every method's docstring states its contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from protocols.call_messages import CallRecord
from protocols.chat import Message
from protocols.presence import PresenceRecord
from protocols.room_messages import RoomState

# -- Realtime edge (implemented by the gateway, server/gateway) ------------------------------


class Broadcaster(Protocol):
    async def to_room(self, room_id: str, event: str, data: dict[str, Any]) -> None:
        """Emit `event` to every socket in the Socket.IO room f"room:{room_id}" (the sockets
        that joined the chat room), on every node. At most once; emits from one caller
        arrive in the order they were made."""
        ...

    async def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        """Emit `event` to every socket of the user (Socket.IO room f"user:{user_id}"), on
        every node. At most once."""
        ...

    async def to_watchers(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        """Emit `event` to every socket subscribed to the user's presence (Socket.IO room
        f"presence:{user_id}"), on every node. At most once."""
        ...


class PresenceReader(Protocol):
    async def online(self, user_ids: list[str]) -> set[str]:
        """The subset of user_ids that currently have at least one live session (any status
        but offline). Unknown users are offline."""
        ...


class PresenceStore(PresenceReader, Protocol):
    """Presence records, one per user, written only by that user's UserActor (see
    protocols.presence: a record whose alive_until has passed reads as offline). A Redis hash
    per user when configured, a dict otherwise. A record is forgotten `retention` seconds
    (30 days by default) after its last write; the user then reads as offline, never seen.
    `online()` (PresenceReader) answers from these records in one round trip. Records hold
    status and times only: sessions live in the SessionDirectory."""

    async def save(self, user_id: str, record: PresenceRecord) -> None:
        """Replace the user's record (last write wins). Raises on a storage failure; the
        caller keeps its in-memory state and writes again on its next heartbeat."""
        ...

    async def load(self, user_id: str) -> PresenceRecord | None:
        """The user's record as last saved, stale or not; None when there is none."""
        ...

    async def get_many(self, user_ids: list[str]) -> dict[str, PresenceRecord]:
        """The records of those of user_ids that have one, in one round trip."""
        ...


class SessionDirectory(Protocol):
    """Where a UserActor learns which sessions its user has, on any node (implemented by the
    gateway over the per-node session records every node writes for the sockets it holds)."""

    async def sessions(self, user_id: str) -> dict[str, str]:
        """The user's live sessions on every node (socket id -> node id), as the nodes holding
        them recorded them. Left out: sessions of nodes that are not in the live cluster view
        (dead or gone), and sockets of this node that vanished without their close being
        reported (e.g. a client lost mid-handshake); the records of such sockets, and of
        other nodes when this node is alone, are forgotten too. Raises on a storage
        failure; the caller keeps what it knew."""
        ...


class UnreadNotifications(Protocol):
    async def unread_count(self, user_id: str) -> int:
        """How many of the user's notifications are unread now (committed rows)."""
        ...


# -- Chat (RoomActor) -----------------------------------------------------------------------


class RoomStore(Protocol):
    """The system of record of rooms and messages (Postgres). Every write is committed when
    the call returns."""

    async def load(self, room_id: str) -> RoomState | None:
        """The room, its members (with read positions) and the highest seq stored; None when
        there is no such room. `room_id` is a canonical UUID string."""
        ...

    async def append(self, message: Message) -> Message:
        """Store `message` under its room's next seq (the seq it carries is ignored) and
        return it as stored, with that seq; the room's last_seq and the sender's read position
        follow (at once, or written behind but read as if written). Appends of one caller
        take seqs in the order they were called, so a room may have several in flight at once;
        every seq of a room is given once, with no gap, also when two activations of the room
        append at the same time (a cluster view change).

        Idempotent per (room_id, sender_id, client_id): when that triple is stored already,
        nothing is written, no seq is taken, and the stored message is returned, so
        `result.id != message.id` tells a resend."""
        ...

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        """Up to `limit` messages with seq > after_seq, ascending by seq."""
        ...

    async def before(self, room_id: str, before_seq: int | None, limit: int) -> list[Message]:
        """The `limit` messages just below before_seq (None: the newest), ascending by seq."""
        ...

    async def set_read(self, room_id: str, user_id: str, seq: int) -> None:
        """Move the member's read position forward to `seq` (never backward: a lower seq
        changes nothing), and mark read their unread `message` notification about this room
        if it names a message at or below `seq`. A user who is not a member is ignored."""
        ...


class HotHistory(Protocol):
    """A bounded cache of each room's newest messages (Redis, or memory in one process), in
    front of RoomStore. Best effort: it may have lost or never received some messages, so a
    reader checks that what it got runs contiguously and falls back to RoomStore otherwise."""

    async def append(self, message: Message) -> None:
        """Cache a stored message; idempotent per (room, seq). Keeps only the newest
        `max_messages` per room and forgets messages older than `max_age` seconds. May write
        in the background (and then log a failure rather than raise); `after` sees every
        earlier append that succeeded."""
        ...

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        """Up to `limit` cached messages with seq > after_seq, ascending by seq. Possibly
        with holes, or empty, when the cache does not hold them."""
        ...


class RoomSockets(Protocol):
    async def leave(self, room_id: str, user_id: str) -> None:
        """Take every socket of the user, on every node, out of the room's live stream
        (Socket.IO room f"room:{room_id}"), after they stopped being a member. Best effort,
        never raises: a socket that joins meanwhile is refused by room:join anyway."""
        ...


class MessageNotifier(Protocol):
    async def notify_offline(self, user_ids: list[str], message: Message) -> None:
        """Record a `message` notification about `message` for each of user_ids (members who
        are offline; never the sender), in one batch. A recipient who still has an unread
        `message` notification for the same room gets nothing new: one per room until read."""
        ...


# -- Calls (CallActor) ------------------------------------------------------------------------


class CallStore(Protocol):
    """The system of record of calls (Postgres): a call and its participants, with outcome
    and duration once ended. Every write is committed when the call returns.

    Fencing: records are versioned, so that of two activations of one CallActor (briefly
    possible while the cluster's membership changes) only one can write on a given state;
    the other gets protocols.call_messages.CallConflict, reloads and decides again."""

    async def load(self, call_id: str) -> CallRecord | None:
        """The call as last saved, with its stored `version`; None when there is none.
        `call_id` is a canonical UUID."""
        ...

    async def save(self, record: CallRecord, alive_until: datetime) -> int:
        """Write the whole call (the call and every participant) in one transaction, only if
        `record.version` is the stored version, and return the new stored version.

        `record.version == 0` inserts (version 1); when the id is stored already nothing is
        written and CallConflict is raised. Otherwise the stored version must equal
        `record.version`; if not (another activation saved since this one loaded or saved),
        nothing at all is written and CallConflict is raised.

        Busy fence: raises protocols.call_messages.UserBusy (and writes nothing) when a
        participant that is `joined` here is also joined in another call that has not ended
        and whose alive_until has not passed. CallConflict takes precedence over UserBusy.
        `alive_until` is how long this call counts as live without another save or `touch`
        (a node that died leaves no user busy for ever)."""
        ...

    async def touch(self, call_id: str, alive_until: datetime) -> None:
        """Push the call's alive_until forward (the actor's heartbeat while it is live). Does
        not change the version, and never touches an ended call (nor revives it)."""
        ...

    async def busy(self, user_ids: list[str], call_id: str) -> set[str]:
        """Those of user_ids joined in a live call other than call_id (see `save`)."""
        ...


class CallDirectory(Protocol):
    """Who may call whom (Postgres, through the chat area's rooms)."""

    async def room_members(self, room_id: str) -> list[str] | None:
        """The room's member ids; None when there is no such room."""
        ...

    async def reachable(self, caller_id: str, user_ids: list[str]) -> set[str]:
        """Those of user_ids that are accounts with no block between them and the caller,
        either way."""
        ...

    async def direct_room(self, user_a: str, user_b: str) -> str:
        """The id of the two users' direct room, created when they have none (at most one per
        pair, even under concurrent calls)."""
        ...


class SessionEmitter(Protocol):
    """Emits to one socket, or to a user's sockets but one (the gateway; any node)."""

    async def to_session(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        """Emit `event` to that socket only. At most once; never raises."""
        ...

    async def to_user_except(self, user_id: str, session_id: str, event: str,
                             data: dict[str, Any]) -> None:
        """Emit `event` to every socket of the user except `session_id`. At most once; never
        raises."""
        ...


class CallEffects(Protocol):
    """What happens outside the call when it goes unanswered or ends. Called after the call
    is saved; failures are logged by the actor and do not change the call."""

    async def missed(self, record: CallRecord, user_ids: list[str]) -> None:
        """Record a `call_missed` notification for each of user_ids about this call (once per
        user and call, even when called again) and push it live."""
        ...

    async def ended(self, record: CallRecord) -> None:
        """The call ended: when it has a room, append a system message summing it up to the
        room's history (through the RoomActor: the next seq, kind "system"); idempotent per
        call."""
        ...
