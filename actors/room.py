"""RoomActor: the single writer of one chat room (key: the room id).

It owns the room's members, its sequence (seq 1, 2, 3, ... with no gap or duplicate), who is
typing and how far each member has read. Every message is checked against membership; a
non-member, and anyone asking about a room that does not exist, gets Rejected("not_member"),
so the answer never tells whether the room exists.

SendMessage: the message goes to the RoomStore, which gives it the room's next seq, and is
acknowledged only once committed. The actor does not wait for the commit with its mailbox
held: it pipes the append to itself (context.pipe_to_self) and defers the answer, so the
next message of the room goes to the store (the same group commit, often) while this one is
being written. Committed messages are then finished one by one in the order they were sent,
which is their seq order: into the hot history, out to the room's sockets as `message:new`,
into a `message` notification for members who are offline, then acknowledged. Those three
are best effort: a failure is logged, the message stays stored and acknowledged, and clients
catch up with `room:join` since_seq or REST history. A failed append crashes the actor (it
reloads from storage) and fails every message in flight; their resends are idempotent.

Notifications: an offline member gets one `message` notification per room until they read the
room (MarkRead); the room's unread_count says how many messages they missed. The actor
remembers whom it notified, so a busy room costs a presence lookup per message and a write
only for members newly gone offline.

JoinRoom(since_seq) replays at most REPLAY_CAP messages after since_seq, oldest first: when
`missed` ends before `last_seq`, the client pages the rest with
`GET /v1/rooms/{id}/messages?after_seq=<last seq in missed>`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import msgspec

from actors.actor import Actor, ActorContext, Promise
from actors.errors import Rejected
from actors.ports import (
    Broadcaster,
    HotHistory,
    MessageNotifier,
    PresenceReader,
    RoomSockets,
    RoomStore,
)
from protocols.chat import MAX_MESSAGE_CHARS, Message
from protocols.ids import is_id, new_id
from protocols.room_messages import (
    AppendSystemMessage,
    JoinResult,
    JoinRoom,
    MarkRead,
    MembershipChanged,
    RoomMsg,
    RoomState,
    SendMessage,
    SetTyping,
)
from protocols.socket import MessageNew, ReadNotice, TypingNotice, to_wire

NOT_MEMBER = "not_member"
INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class RoomPorts:
    store: RoomStore
    history: HotHistory
    broadcaster: Broadcaster
    presence: PresenceReader
    notifier: MessageNotifier
    sockets: RoomSockets


class TypingExpired(msgspec.Struct, frozen=True, kw_only=True):
    """The actor's own timer: `user_id`'s typing indicator ran out. `generation` tells a
    stale timer (the user renewed or stopped since) from the live one."""

    user_id: str
    generation: int


@dataclass(slots=True, eq=False)
class _Sending:
    """A message handed to the store, not finished yet."""

    draft: Message
    member: str | None  # who sent it; None: a system message
    answer: Promise
    append: asyncio.Future[Message] | None = None  # the store's append, piped


@dataclass(slots=True, frozen=True)
class Appended:
    """The actor's own message (piped): the store answered the append of `sending`."""

    sending: _Sending


class RoomActor(Actor):
    idle_timeout: ClassVar[float | None] = 600.0
    TYPING_TTL: ClassVar[float] = 5.0  # seconds a typing indicator lasts unless renewed
    REPLAY_CAP: ClassVar[int] = 500  # messages a join replays at most
    # Seconds a presence lookup is reused: going offline takes PRESENCE_GRACE_SECONDS (10 by
    # default) anyway, and a busy room then asks Redis once per 5 s rather than every second.
    PRESENCE_CACHE: ClassVar[float] = 5.0
    # Appends of one room at the store at once: beyond, the actor waits for the oldest before
    # it takes the next message, so a flood backs up in its mailbox (bounded) as it did when
    # every message waited for its own commit.
    MAX_APPENDING: ClassVar[int] = 64

    def __init__(self, key: str, context: ActorContext, ports: RoomPorts) -> None:
        super().__init__(key, context)
        self._ports = ports
        self._room: RoomState | None = None
        self._last_seq = 0
        self._read: dict[str, int] = {}  # member -> last read seq; the keys are the members
        self._typing: dict[str, tuple[int, int]] = {}  # user -> (timer id, generation)
        self._notified: set[str] = set()  # offline members notified since their last read
        self._online_set: set[str] = set()  # members online when last looked up...
        self._online_at: float | None = None  # ...at this clock.monotonic(); None: never
        self._generation = 0
        self._fresh = False  # loaded by on_start, no message handled since
        self._sending: collections.deque[_Sending] = collections.deque()  # in send order

    @property
    def _log(self) -> logging.Logger:
        return self.context.log

    # -- lifecycle -------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self._load()
        self._fresh = True

    async def _load(self, removed: Sequence[str] = ()) -> None:
        # A key that is not an id cannot be a room; do not send it to storage.
        room = await self._ports.store.load(self.key) if is_id(self.key) else None
        read = {m.user_id: m.last_read_seq for m in room.members} if room else {}
        gone = list(dict.fromkeys(u for u in (*self._read, *removed) if u not in read))
        self._room = room
        if not self._sending:
            # With messages in flight, last_seq stays the last one finished: a join must not
            # count one whose push is still to come.
            self._last_seq = room.last_seq if room else 0
        self._read = read
        self._notified &= self._read.keys()
        self._online_at = None  # members may have changed: look presence up afresh
        for user_id in gone:  # removed members stop typing and stop receiving the room
            if user_id in self._typing:
                await self._stop_typing(user_id)
            await self._best_effort("leave", self._ports.sockets.leave(self.key, user_id))

    # -- dispatch --------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        try:
            return await self._dispatch(message)
        finally:
            self._fresh = False
            if self._room is None:
                # No such room (a made-up id, or deleted): nothing worth keeping, so a
                # refused join or send leaves no actor behind.
                self.context.stop_after()

    async def _dispatch(self, message: Any) -> Any:
        match message:
            case Appended():
                return await self._appended(message)
            case TypingExpired():
                return await self._typing_expired(message)
            case MembershipChanged(removed_user_ids=removed):
                await self._load(removed)
                return None
            case AppendSystemMessage():
                return await self._append_system(message)
            case RoomMsg():
                await self._check_member(message.user_id)
        match message:
            case SendMessage():
                return await self._send(message)
            case JoinRoom():
                return await self._join(message)
            case SetTyping():
                return await self._set_typing(message)
            case MarkRead():
                return await self._mark_read(message)
        raise TypeError(f"RoomActor cannot handle {type(message).__name__}")

    async def _check_member(self, user_id: str) -> None:
        if self._room is None and not self._fresh:
            # Created since we looked (REST creates rooms without telling us): look again,
            # unless on_start just did.
            await self._load()
        if user_id not in self._read:
            raise Rejected(NOT_MEMBER, "You are not a member of this room")

    # -- messages ----------------------------------------------------------------------------

    async def _send(self, request: SendMessage) -> None:
        if not 1 <= len(request.text) <= MAX_MESSAGE_CHARS or not request.client_id:
            raise Rejected(INVALID, f"text must be 1..{MAX_MESSAGE_CHARS} characters and "
                           "client_id non-empty")
        await self._submit(
            self._draft(request.user_id, request.text, request.client_id, "text"),
            request.user_id)

    async def _append_system(self, request: AppendSystemMessage) -> None:
        if self._room is None:
            if not self._fresh:
                await self._load()
            if self._room is None:
                raise Rejected(NOT_MEMBER, "No such room")
        await self._submit(self._draft(request.sender_id, request.text[:MAX_MESSAGE_CHARS],
                                       request.client_id, "system"), None)

    def _draft(self, sender_id: str, text: str, client_id: str,
               kind: Literal["text", "system"]) -> Message:
        # The seq is the store's to give; this one is only what it will most likely be.
        return Message(
            id=new_id(), room_id=self.key, seq=self._last_seq + len(self._sending) + 1,
            sender_id=sender_id, text=text, client_id=client_id,
            created_at=datetime.fromtimestamp(self.context.clock.time(), UTC),
            kind=kind,
        )

    async def _submit(self, draft: Message, member: str | None) -> None:
        """Hand `draft` to the store and answer the message in hand once it is finished."""
        appending = [s.append for s in self._sending if s.append and not s.append.done()]
        if len(appending) >= self.MAX_APPENDING:
            await asyncio.wait(appending[:len(appending) - self.MAX_APPENDING + 1])
        sending = _Sending(draft, member, self.context.defer())
        self._sending.append(sending)
        sending.append = self.context.pipe_to_self(self._ports.store.append(draft),
                                                   lambda _: Appended(sending))

    async def _appended(self, appended: Appended) -> None:
        if all(s is not appended.sending for s in self._sending):
            # Finished already (with an earlier one), or sent by an instance that crashed
            # since (its asker was answered then).
            return
        # Appends end in the order they were made, but a resend's ends later (it reads the
        # first message back): finish in send order, which is seq order.
        while self._sending and (append := self._sending[0].append) is not None \
                and append.done():
            sending = self._sending.popleft()
            stored = append.result()  # a failed append crashes the actor
            sending.answer.resolve(await self._finish(sending, stored))

    async def _finish(self, sending: _Sending, stored: Message) -> Message:
        if stored.id != sending.draft.id:
            # A resend of client_id: the first message, nothing new, unless it was stored by
            # an activation that died before pushing it (a crash, a node killed).
            await self._publish_if_unpublished(stored)
            return stored
        self._last_seq = max(self._last_seq, stored.seq)
        member = sending.member
        if member is not None:
            self._read[member] = max(self._read.get(member, 0), stored.seq)
            if member in self._typing:
                await self._stop_typing(member)  # sending ends "typing..."
        await self._cache_and_push(stored)
        if member is not None:
            await self._notify_offline(stored)
        return stored

    async def _cache_and_push(self, stored: Message) -> None:
        """Into the hot history, then out to the room; both before the next message, so
        `message:new` goes out in seq order and a join after it finds it cached. Cached
        first: a message that was pushed is in the history, which is how a resend after a
        crash tells a message never pushed (push it now) from one pushed (never twice)."""
        await self._best_effort("hot history append", self._ports.history.append(stored))
        await self._emit("message:new", to_wire(MessageNew(message=stored)))

    async def _publish_if_unpublished(self, stored: Message) -> None:
        """The hot history and the live push go together: a stored message missing from the
        history was probably never pushed either, so push it now (late, but not lost for
        members who stayed connected; rejoins replay it anyway)."""
        try:
            cached = await self._ports.history.after(self.key, stored.seq - 1, 1)
        except Exception:
            return  # cannot tell: a duplicate push is worse than a late one
        if cached and cached[0].seq == stored.seq:
            return
        await self._cache_and_push(stored)

    async def _online(self) -> set[str]:
        # Presence is eventually consistent anyway (a grace period before offline); reading
        # it once per PRESENCE_CACHE seconds keeps a busy room from asking on every message.
        now = self.context.clock.monotonic()
        if self._online_at is None or now - self._online_at >= self.PRESENCE_CACHE:
            self._online_set = await self._ports.presence.online(list(self._read))
            self._online_at = now
        return self._online_set

    async def _notify_offline(self, message: Message) -> None:
        # Members notified since they last read the room already hold an unread `message`
        # notification for it (the store keeps one per room until read): skip them.
        candidates = [u for u in self._read if u != message.sender_id and u not in self._notified]
        if not candidates:
            return
        try:
            online = await self._online()
            offline = [u for u in candidates if u not in online]
            if offline:
                await self._ports.notifier.notify_offline(offline, message)
                self._notified.update(offline)
        except Exception:
            self._log.exception("room %s: message notifications for seq %d failed",
                                self.key, message.seq)

    async def _join(self, request: JoinRoom) -> JoinResult:
        missed: list[Message] = []
        if request.since_seq is not None:
            missed = await self._missed(max(0, request.since_seq))
        return JoinResult(last_seq=self._last_seq, missed=missed)

    async def _missed(self, since: int) -> list[Message]:
        end = min(self._last_seq, since + self.REPLAY_CAP)
        wanted = end - since
        if wanted <= 0:
            return []
        try:
            cached = await self._ports.history.after(self.key, since, wanted)
        except Exception:
            self._log.warning("room %s: hot history unavailable; reading the store", self.key,
                              exc_info=True)
            cached = []
        if len(cached) == wanted and all(m.seq == since + 1 + i for i, m in enumerate(cached)):
            return cached
        return await self._ports.store.after(self.key, since, wanted)

    async def _mark_read(self, request: MarkRead) -> None:
        seq = min(request.seq, self._last_seq)
        if seq <= self._read[request.user_id]:
            return  # read positions only move forward
        await self._ports.store.set_read(self.key, request.user_id, seq)
        self._read[request.user_id] = seq
        self._notified.discard(request.user_id)  # their notification was read with the room
        await self._emit("message:read", to_wire(
            ReadNotice(room_id=self.key, user_id=request.user_id, seq=seq)))

    # -- typing ------------------------------------------------------------------------------

    async def _set_typing(self, request: SetTyping) -> None:
        user_id = request.user_id
        if not request.active:
            if user_id in self._typing:
                await self._stop_typing(user_id)
            return
        was_typing = user_id in self._typing
        self._stop_typing_timer(user_id)
        self._generation += 1
        timer = self.context.schedule(
            self.TYPING_TTL, TypingExpired(user_id=user_id, generation=self._generation))
        self._typing[user_id] = (timer, self._generation)
        if not was_typing:  # a renewal only pushes the expiry back
            await self._emit_typing(user_id, True)

    async def _typing_expired(self, expired: TypingExpired) -> None:
        entry = self._typing.get(expired.user_id)
        if entry is None or entry[1] != expired.generation:
            return  # renewed or stopped since this timer was set
        del self._typing[expired.user_id]
        await self._emit_typing(expired.user_id, False)

    async def _stop_typing(self, user_id: str) -> None:
        self._stop_typing_timer(user_id)
        await self._emit_typing(user_id, False)

    def _stop_typing_timer(self, user_id: str) -> None:
        entry = self._typing.pop(user_id, None)
        if entry is not None:
            self.context.cancel(entry[0])

    async def _emit_typing(self, user_id: str, active: bool) -> None:
        await self._emit("typing", to_wire(
            TypingNotice(room_id=self.key, user_id=user_id, active=active)))

    # -- best-effort side effects -------------------------------------------------------------

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        await self._best_effort(f"emit {event}", self._ports.broadcaster.to_room(
            self.key, event, data))

    async def _best_effort(self, what: str, action: Any) -> None:
        # The durable part is done; a cache or push failing must not fail the message.
        try:
            await action
        except Exception:
            self._log.warning("room %s: %s failed", self.key, what, exc_info=True)
