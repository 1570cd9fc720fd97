"""UserActor: one per user in the whole cluster. Knows the user's live sessions (every
device, on every node), is the single writer of their presence and unread notification
count, and the one that pushes `presence`, `notification` and `feed:new` to sockets.

Sessions: the truth is the per-node session records, written by the node holding each socket
and read through the SessionDirectory, which also leaves out sessions of nodes that left the
cluster view. The actor keeps an in-memory copy: SessionOpened / SessionClosed (sent by the
gateway after it updated the records) keep it current at once, the activation loads it, every
heartbeat replaces it with what the directory says (so a lost close, or a second activation
during a view change, cannot keep a stale session), and protocols.cluster.NodeLeft drops the
sessions of a node that is gone. The presence record holds no sessions, so two activations
writing it during a view change cannot lose each other's sessions.

Presence: the first session makes the user online; `presence:set` picks online, away or dnd
while connected; when the last session closes the user stays as they were for a grace period
(a quick reconnect, e.g. a page reload, never shows as offline) and then, unless the
directory lists a session again, goes offline with last_seen_at = when that session closed.
Every change is saved through the PresenceStore and broadcast to the sockets watching the
user.

While the user is not offline a heartbeat timer re-saves the record with a fresh
`alive_until`, so readers see a user whose actor's node died as offline within
`alive_window`, and the pending timer keeps the actor from being passivated (a pending grace
period must fire). After a crash or a handover, the activation reloads the record and the
sessions: with sessions the user is online; without, a record that is still live starts the
grace period, as if the last session had just closed.

Loading waits for the first message: when it is a SessionOpened carrying the gateway's
snapshot (the socket was the user's only session, and the presence record was read in the
same atomic step that recorded it), the actor starts from the snapshot instead of reading the
records, and keeps it only if its first save, conditional on the snapshot, succeeds; anything
that saved the record in between (an activation elsewhere, before a crash or a handover)
makes that save fail, and the actor then loads as it would have. Should no message come with
the activation (protocols.cluster.Activate), a timer loads at once.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import msgspec

from actors.actor import Actor, ActorContext
from actors.errors import Rejected
from actors.ports import (
    Broadcaster,
    PresenceStore,
    SessionDirectory,
    UnreadNotifications,
)
from protocols.cluster import NodeLeft
from protocols.presence import (
    ChosenStatus,
    EffectivePresence,
    PresenceRecord,
    PresenceStatus,
    effective,
)
from protocols.socket import PresenceEvent, presence_event, to_wire
from protocols.user_messages import (
    GetPresence,
    GetUnread,
    NotificationsRead,
    PushFeedItem,
    PushNotification,
    SessionClosed,
    SessionOpened,
    SetPresence,
)

DEFAULT_GRACE = 10.0  # seconds offline is delayed after the last session closes
# Seconds between session reloads and re-saves while not offline. Every connected user's actor
# beats, so this is a cost per connection: at 20 s the beats of 2,000 idle users were ~10% of
# the server's CPU under chat load (py-spy, `make bench-chat`).
DEFAULT_HEARTBEAT = 30.0
DEFAULT_ALIVE_WINDOW = 90.0  # how long a saved record counts as live without a heartbeat


class GraceExpired(msgspec.Struct, frozen=True):
    """Timer message: the grace period that started with `generation` is over."""

    generation: int


class Heartbeat(msgspec.Struct, frozen=True):
    """Timer message: reload the sessions and re-save the record so it stays live."""


class Load(msgspec.Struct, frozen=True):
    """Timer message: load the state now, unless a message already made the actor load it
    (an activation by protocols.cluster.Activate gets no message of its own)."""


# Timer messages without fields: one instance each, not one per timer.
_HEARTBEAT = Heartbeat()
_LOAD = Load()


class ConditionalPresenceStore(Protocol):
    """A PresenceStore that can save on the condition that the record is still the one a
    snapshot saw (protocols.user_messages.PresenceSnapshot); Redis implements it."""

    async def save_if(self, user_id: str, record: PresenceRecord, stamp: str) -> bool:
        """Save, or return False without writing when the record changed since `stamp`."""
        ...


class UserActor(Actor):
    def __init__(self, key: str, context: ActorContext, *, presence: PresenceStore,
                 broadcaster: Broadcaster, directory: SessionDirectory,
                 unread: UnreadNotifications | None = None, grace: float = DEFAULT_GRACE,
                 heartbeat: float = DEFAULT_HEARTBEAT,
                 alive_window: float = DEFAULT_ALIVE_WINDOW) -> None:
        super().__init__(key, context)
        if alive_window <= heartbeat:
            raise ValueError("alive_window must be longer than the heartbeat interval")
        self._presence = presence
        self._broadcaster = broadcaster
        self._unread_port = unread
        self._directory = directory
        self._grace = grace
        self._heartbeat_every = heartbeat
        self._alive_window = alive_window
        self._sessions: dict[str, str] = {}  # session id -> node id
        self._status: PresenceStatus = "offline"
        self._last_seen: float | None = None  # when the last session closed; None while open
        self._grace_generation = 0
        self._grace_timer: int | None = None
        self._heartbeat_timer: int | None = None
        self._unread: int | None = None  # None until first needed
        self._saved_at: float | None = None  # clock.monotonic() of the last presence save
        self._loaded = False  # until the first message loads the state (or adopts a snapshot)
        self._load_timer: int | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        # The first message loads (see the module docstring); this timer is for an
        # activation that gets none.
        self._load_timer = self.context.schedule(0.0, _LOAD)

    async def _start(self, message: Any) -> None:
        """Load the state before the activation's first message is handled, or adopt the
        snapshot that message carries."""
        if self._load_timer is not None:
            self.context.cancel(self._load_timer)
            self._load_timer = None
        if not (isinstance(message, SessionOpened) and await self._adopt(message)):
            await self._load()
        self._loaded = True

    async def _adopt(self, opened: SessionOpened) -> bool:
        """Start from the snapshot of `opened` (its session is the user's only one), as
        `_load` would have from the same records: kept only if the save conditional on the
        snapshot succeeds. False, the state untouched, when there is no snapshot to trust."""
        snapshot = opened.presence
        # hasattr, not a runtime protocol's isinstance: that costs microseconds per call.
        if snapshot is None or not hasattr(self._presence, "save_if"):
            return False
        store = cast(ConditionalPresenceStore, self._presence)
        seen = effective(snapshot.record, self.context.clock.time())
        went_online = seen.status == "offline"
        self._status = "online" if went_online else seen.status
        self._sessions = {opened.session_id: opened.node_id}
        try:
            saved = await store.save_if(self.key, self._record(), snapshot.stamp)
        except Exception:  # load instead, as if there had been no snapshot
            self.context.log.warning("presence of %s not saved", self.key, exc_info=True)
            saved = False
        if not saved:
            self._status, self._sessions = "offline", {}
            return False
        self._saved_at = self.context.clock.monotonic()
        self._arm_heartbeat()
        if went_online:
            await self._announce()
        return True

    async def _load(self) -> None:
        """The state from the presence record and the session records."""
        record = await self._presence.load(self.key)
        now = self.context.clock.time()
        seen = effective(record, now)
        self._status = seen.status
        self._last_seen = seen.last_seen_at
        sessions = await self._load_sessions()
        if sessions:
            # Sockets exist (a restart, a handover, or a message that beat SessionOpened
            # here): online, keeping a status the user chose if their record is still live.
            self._sessions = sessions
            went_online = self._status == "offline"
            if went_online:
                self._status = "online"
            self._last_seen = None
            self._arm_heartbeat()
            await self._save()
            if went_online:
                await self._announce()
        elif self._status != "offline":
            # A live record without sessions: its last session closed just before the
            # restart, or we could not tell (then the next heartbeat decides).
            self._arm_heartbeat()
            if sessions is not None:
                self._last_seen = self._last_seen or now
                self._start_grace()

    # -- messages -------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        if not self._loaded:
            await self._start(message)
        match message:
            case SessionOpened(session_id=session_id, node_id=node_id):
                await self._opened(session_id, node_id)
            case SessionClosed(session_id=session_id):
                await self._closed(session_id)
            case NodeLeft(node_id=node_id):
                await self._node_left(node_id)
            case GraceExpired(generation=generation):
                await self._grace_over(generation)
            case Heartbeat():
                await self._beat()
            case Load():
                pass  # loaded above
            case SetPresence(status=status):
                return await self._choose(status)
            case GetPresence():
                return self._event()
            case PushNotification(notification=notification):
                await self._push_notification(notification)
            case PushFeedItem(post=post):
                if self._sessions:
                    await self._emit_user("feed:new", {"post": post})
            case NotificationsRead(unread_count=count):
                self._unread = max(0, count)
            case GetUnread():
                return await self._unread_count()
            case _:
                raise Rejected("unknown_message", f"UserActor got {type(message).__name__}")
        return None

    async def _opened(self, session_id: str, node_id: str) -> None:
        if self._sessions.get(session_id) == node_id and self._status != "offline" \
                and self._grace_timer is None and self._fresh_save():
            # The activation just loaded (or adopted) this session and saved the record that
            # says so (the common first connect): nothing to write again.
            return
        self._sessions[session_id] = node_id
        self._cancel_grace()
        self._last_seen = None
        went_online = self._status == "offline"
        if went_online:
            self._status = "online"
        self._arm_heartbeat()
        await self._save()
        if went_online:
            await self._announce()

    async def _closed(self, session_id: str) -> None:
        if self._sessions.pop(session_id, None) is None:
            return
        if not self._sessions:
            self._last_seen = self.context.clock.time()
            self._start_grace()
        await self._save()

    async def _node_left(self, node_id: str) -> None:
        # Its sockets are gone with it, closes unreported: as if each had closed now.
        gone = [sid for sid, node in self._sessions.items() if node == node_id]
        if not gone:
            return
        for session_id in gone:
            del self._sessions[session_id]
        if not self._sessions:
            self._last_seen = self.context.clock.time()
            self._start_grace()
        await self._save()

    async def _grace_over(self, generation: int) -> None:
        if generation != self._grace_generation or self._sessions or self._status == "offline":
            return  # a session came back (or a newer grace period is running)
        self._grace_timer = None
        # The records have the last word: a session whose SessionOpened is still on its
        # way, or that a view lagging behind left out, keeps the user online.
        sessions = await self._load_sessions()
        if sessions:
            self._sessions = sessions
            self._last_seen = None
            await self._save()
            return
        self._status = "offline"
        if self._heartbeat_timer is not None:
            self.context.cancel(self._heartbeat_timer)
            self._heartbeat_timer = None
        await self._save()
        await self._announce()

    async def _beat(self) -> None:
        self._heartbeat_timer = None
        if self._status == "offline":
            return
        self._arm_heartbeat()
        sessions = await self._load_sessions()
        if sessions is not None:
            # The records are the truth: a close that was never reported, or sessions that
            # another activation saw open, must not leave this copy wrong for long.
            self._sessions = sessions
            if sessions:
                self._cancel_grace()
                self._last_seen = None
            elif self._grace_timer is None:
                self._last_seen = self.context.clock.time()
                self._start_grace()
        await self._save()

    async def _choose(self, status: ChosenStatus) -> PresenceEvent:
        if not self._sessions:
            raise Rejected("not_connected", "presence is set from a connected session")
        if status != self._status:
            self._status = status
            await self._save()
            await self._announce()
        return self._event()

    async def _push_notification(self, notification: dict[str, Any]) -> None:
        if self._unread_port is not None:
            self._unread = None  # the new row is committed: recount rather than guess
        else:
            self._unread = (self._unread or 0) + 1
        if self._sessions:
            count = await self._unread_count()
            await self._emit_user("notification",
                                  {"notification": notification, "unread_count": count})

    # -- helpers --------------------------------------------------------------------------

    async def _load_sessions(self) -> dict[str, str] | None:
        """The user's sessions from the directory; None when it could not be read (the
        caller keeps what it knew)."""
        try:
            return dict(await self._directory.sessions(self.key))
        except Exception:
            self.context.log.warning("sessions of %s not read", self.key, exc_info=True)
            return None

    async def _unread_count(self) -> int:
        if self._unread is None:
            self._unread = 0
            if self._unread_port is not None:
                try:
                    self._unread = await self._unread_port.unread_count(self.key)
                except Exception:
                    self.context.log.warning("unread count unavailable for %s", self.key,
                                             exc_info=True)
        return self._unread

    def _start_grace(self) -> None:
        self._cancel_grace()
        self._grace_generation += 1
        self._grace_timer = self.context.schedule(self._grace,
                                                  GraceExpired(self._grace_generation))

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self.context.cancel(self._grace_timer)
            self._grace_timer = None
        self._grace_generation += 1  # a grace message already in the mailbox is now stale

    def _arm_heartbeat(self) -> None:
        if self._heartbeat_timer is None:
            self._heartbeat_timer = self.context.schedule(self._heartbeat_every, _HEARTBEAT)

    def _record(self) -> PresenceRecord:
        if self._status == "offline":
            return PresenceRecord(status="offline", last_seen_at=self._last_seen)
        return PresenceRecord(
            status=self._status,
            last_seen_at=None if self._sessions else self._last_seen,
            alive_until=self.context.clock.time() + self._alive_window,
        )

    async def _save(self) -> None:
        # Presence is soft state: a storage failure must not crash the actor (that would drop
        # the message being handled); the next heartbeat writes the record again.
        try:
            await self._presence.save(self.key, self._record())
            self._saved_at = self.context.clock.monotonic()
        except Exception:
            self.context.log.warning("presence of %s not saved", self.key, exc_info=True)

    def _fresh_save(self) -> bool:
        """Whether the record was written less than a tenth of a heartbeat ago."""
        return self._saved_at is not None and \
            self.context.clock.monotonic() - self._saved_at < self._heartbeat_every / 10

    def _event(self) -> PresenceEvent:
        return presence_event(self.key, EffectivePresence(status=self._status,
                                                          last_seen_at=self._last_seen))

    async def _announce(self) -> None:
        try:
            await self._broadcaster.to_watchers(self.key, "presence", to_wire(self._event()))
        except Exception:
            self.context.log.warning("presence of %s not broadcast", self.key, exc_info=True)

    async def _emit_user(self, event: str, data: dict[str, Any]) -> None:
        try:
            await self._broadcaster.to_user(self.key, event, data)
        except Exception:
            self.context.log.warning("%s to %s not delivered", event, self.key, exc_info=True)
