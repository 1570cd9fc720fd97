"""CallActor: the single writer of one call (key: the call id).

States: invited (recorded, nobody rung yet) -> ringing (call:incoming sent to every socket of
each callee) -> active (someone accepted) -> ended. Every transition is saved through the
CallStore before it is acknowledged or announced; the store's busy fence (a user is joined in
at most one live call) makes accepting two calls at once impossible even across nodes.

Who is in the call: the caller from the start, each callee once they accept, each from
exactly one socket (the device). Signals (offer, answer, ICE) are relayed only from a joined
participant's call socket to another joined participant's call socket: a ringing callee
receives no offer (clients send it after `call:accepted`), an outsider or another device of a
participant gets `not_participant` and nothing is delivered.

Endings: the caller hanging up (or their call socket disconnecting) before any answer cancels
the call; the last ringing callee declining ends it `rejected`; nobody answering within the
ring timeout ends it `unanswered`, with a `call_missed` notification for each callee who
never answered; while active, the call ends `hangup` when fewer than two participants remain.
In a group call (a room's members), invitees still ringing when the ring times out stop
ringing (call:ended `unanswered`, and call_missed) but, like any member of the room, may still
join while the call goes on, up to max_participants. When the call ends, the CallEffects port
appends a system message to the room's history.

Cluster: a participant is recorded with the node holding their call socket (`device_node`);
when that node leaves the cluster (NodeLeft) they leave the call as if the socket had closed.
During a membership change two activations of one call may briefly coexist, so every save is
fenced by the record's version: a save that conflicts (CallConflict) means this activation's
state is stale; it reloads the call (re-arming its timers from the stored state) and handles
the same message once more against the fresh state, and if that conflicts too the message is
refused `unavailable` (retryable). Side effects (emits, notifications) are only sent after the
save they announce succeeded, so the losing attempt sends nothing. A timer retried that way
acts only if the stored call still calls for it: a stale ring timer cannot end a call that was
answered elsewhere, nor touch one that ended.

No asks to other actors: rooms and blocks are read through the CallDirectory port, busy
through the CallStore, and everything outward is a Socket.IO emit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec

from actors.actor import Actor, ActorContext
from actors.errors import Rejected
from actors.ports import Broadcaster, CallDirectory, CallEffects, CallStore, SessionEmitter
from protocols.call_messages import (
    AcceptCall,
    CallConflict,
    CallMsg,
    CallParticipant,
    CallRecord,
    HangUp,
    RejectCall,
    RelaySignal,
    SessionGone,
    StartCall,
    StartResult,
    UserBusy,
)
from protocols.calls import (
    MAX_CALL_PARTICIPANTS,
    CallAnswered,
    CallEnded,
    CallIncoming,
    CallLeft,
    CallSignalled,
    EndReason,
)
from protocols.cluster import NodeLeft
from protocols.ids import is_id

# Refusal codes (Rejected.code, the `error.code` of an ack).
INVALID = "invalid"
NOT_FOUND = "call_not_found"
NOT_PARTICIPANT = "not_participant"
NOT_MEMBER = "not_member"
USER_NOT_FOUND = "user_not_found"
BUSY = "busy"
CALL_FULL = "call_full"
CALL_ENDED = "call_ended"
CALL_EXISTS = "call_exists"
NOT_RINGING = "not_ringing"
ANSWERED_ELSEWHERE = "answered_elsewhere"
UNAVAILABLE = "unavailable"  # another activation kept saving first: retry

DEFAULT_RING_TIMEOUT = 30.0
DEFAULT_HEARTBEAT = 60.0  # seconds between alive_until renewals of a live call
DEFAULT_ALIVE_WINDOW = 180.0  # a live call not renewed for this long no longer makes busy


@dataclass(frozen=True, slots=True)
class CallPorts:
    store: CallStore
    directory: CallDirectory
    broadcaster: Broadcaster
    sessions: SessionEmitter
    effects: CallEffects


class RingTimeout(msgspec.Struct, frozen=True):
    """Timer: the ring period is over."""


class Heartbeat(msgspec.Struct, frozen=True):
    """Timer: renew the live call's alive_until."""


def _wire(value: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(value)  # type: ignore[no-any-return]


class CallActor(Actor):
    idle_timeout: ClassVar[float | None] = 60.0  # an ended call has nothing left to do

    def __init__(self, key: str, context: ActorContext, ports: CallPorts, *,
                 ring_timeout: float = DEFAULT_RING_TIMEOUT,
                 max_participants: int = MAX_CALL_PARTICIPANTS,
                 heartbeat: float = DEFAULT_HEARTBEAT,
                 alive_window: float = DEFAULT_ALIVE_WINDOW) -> None:
        super().__init__(key, context)
        if alive_window <= heartbeat:
            raise ValueError("alive_window must be longer than the heartbeat interval")
        self._ports = ports
        self._ring_timeout = ring_timeout
        self._max = max_participants
        self._heartbeat_every = heartbeat
        self._alive_window = alive_window
        self._call: CallRecord | None = None
        self._people: dict[str, CallParticipant] = {}  # by user id, in invitation order
        self._ring_timer: int | None = None
        self._heartbeat_timer: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self._load()

    async def _load(self) -> None:
        """Take the call as stored (none: nothing to do) and arm the timers it needs."""
        record = await self._ports.store.load(self.key) if is_id(self.key) else None
        self._call = record
        self._people = {p.user_id: p for p in record.participants} if record else {}
        if record is None or record.state == "ended":
            return
        # Timers are gone after a crash or with a new activation; the ring timeout runs from
        # creation (so a call that should have stopped ringing does so at once).
        self._arm_heartbeat()
        if any(p.state == "ringing" for p in record.participants):
            elapsed = self.context.clock.time() - record.created_at.timestamp()
            self._ring_timer = self.context.schedule(max(0.0, self._ring_timeout - elapsed),
                                                     RingTimeout())

    async def _reload(self) -> None:
        """Drop this activation's (stale) state and timers and load the stored call."""
        self._cancel_ring()
        self._cancel_heartbeat()
        await self._load()

    # -- dispatch --------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        try:
            return await self._receive(message)
        finally:
            if self._call is None:
                # No such call (a refused invite, a made-up id): nothing worth keeping, so
                # the refusal leaves no actor behind.
                self.context.stop_after()

    async def _receive(self, message: Any) -> Any:
        try:
            return await self._handle(message)
        except CallConflict:
            # Another activation of this call saved first: decide again on the stored state.
            self.context.log.info("call %s: saved elsewhere; reloading", self.key)
            await self._reload()
        try:
            return await self._handle(message)
        except CallConflict:
            await self._reload()  # nothing of the attempt may linger in memory
            self.context.log.warning("call %s: %s conflicted twice", self.key,
                                     type(message).__name__)
            raise Rejected(UNAVAILABLE, "The call is being updated elsewhere; try again") \
                from None

    async def _handle(self, message: Any) -> Any:
        match message:
            case RingTimeout():
                # After a reload a fresh ring timer may be pending: this message stands for it.
                self._cancel_ring()
                return await self._ring_over()
            case Heartbeat():
                self._cancel_heartbeat()
                return await self._beat()
            case NodeLeft():
                return await self._node_left(message)
            case StartCall():
                return await self._start(message)
            case SessionGone():
                return await self._session_gone(message)
            case CallMsg() if self._call is None:
                raise Rejected(NOT_FOUND, "No such call")
            case AcceptCall():
                return await self._accept(message)
            case RejectCall():
                return await self._reject(message)
            case HangUp():
                return await self._hang_up(message)
            case RelaySignal():
                return await self._relay(message)
        raise TypeError(f"CallActor cannot handle {type(message).__name__}")

    # -- starting --------------------------------------------------------------------------

    async def _start(self, request: StartCall) -> StartResult:
        if self._call is not None:
            return self._started_again(self._call, request)
        caller = request.user_id
        if (request.room_id is None) == (request.user_ids is None):
            raise Rejected(INVALID, "Give exactly one of room_id and user_ids")
        room_id, callees = await self._callees(request)
        busy = await self._ports.store.busy(callees, self.key)
        if busy >= set(callees):
            raise Rejected(BUSY, "Busy: in another call")
        now = self._now()
        people = [CallParticipant(user_id=caller, state="joined", device_id=request.session_id,
                                  device_node=request.node_id or None, joined_at=now)]
        people += [CallParticipant(user_id=u, state="busy" if u in busy else "ringing")
                   for u in callees]
        self._call = CallRecord(id=self.key, room_id=room_id,
                                kind="direct" if len(callees) == 1 else "group",
                                media=request.media, state="invited", initiator_id=caller,
                                participants=people, created_at=now)
        self._people = {p.user_id: p for p in people}
        try:
            await self._save()  # recorded before anyone is rung
        except UserBusy:
            self._call, self._people = None, {}
            raise Rejected(BUSY, "You are in another call") from None
        self._set(state="ringing")
        await self._save()
        # Rung only once both saves stood: a conflicting attempt has announced nothing.
        incoming = _wire(CallIncoming(call_id=self.key, from_user_id=caller,
                                      media=request.media, room_id=room_id))
        for user_id in self._in("ringing"):
            await self._emit(self._ports.broadcaster.to_user(user_id, "call:incoming",
                                                             incoming))
        self._ring_timer = self.context.schedule(self._ring_timeout, RingTimeout())
        self._arm_heartbeat()
        return StartResult(call_id=self.key, busy=sorted(busy))

    def _started_again(self, call: CallRecord, request: StartCall) -> StartResult:
        """A StartCall for a call that exists: the same one asked again (a retry, or the
        re-handling after a conflict) gets the same answer; anyone else `call_exists`."""
        caller = self._people.get(request.user_id)
        if call.initiator_id != request.user_id or caller is None or \
                caller.device_id != request.session_id:
            raise Rejected(CALL_EXISTS, "This call id is taken")
        return StartResult(call_id=self.key, busy=sorted(self._in("busy")))

    async def _callees(self, request: StartCall) -> tuple[str | None, list[str]]:
        """(room_id, callees) of a new call, or the refusal."""
        caller = request.user_id
        room_id: str | None
        if request.room_id is not None:
            room_id = request.room_id
            members = await self._ports.directory.room_members(room_id)
            if members is None or caller not in members:
                raise Rejected(NOT_MEMBER, "You are not a member of this room")
            callees = [u for u in members if u != caller]
        else:
            callees = [u for u in dict.fromkeys(request.user_ids or []) if u != caller]
            if not callees or len(callees) >= self._max:
                raise Rejected(INVALID, f"Call 1 to {self._max - 1} other users")
            reachable = await self._ports.directory.reachable(caller, callees)
            if set(callees) - reachable:
                raise Rejected(USER_NOT_FOUND, "No such user")
            room_id = None
            if len(callees) == 1:
                room_id = await self._ports.directory.direct_room(caller, callees[0])
        if not callees:
            raise Rejected(INVALID, "There is nobody else in this room to call")
        return room_id, callees

    # -- answering -------------------------------------------------------------------------

    async def _accept(self, request: AcceptCall) -> None:
        call = self._live_call()
        user = request.user_id
        person = self._people.get(user)
        if person is not None and person.state == "joined":
            if person.device_id == request.session_id:
                return  # a retried accept from the same device
            raise Rejected(ANSWERED_ELSEWHERE, "You answered this call on another device")
        invited = person is not None and person.state in ("ringing", "missed")
        if not invited and not await self._may_join(call, user):
            raise Rejected(NOT_PARTICIPANT, "You are not invited to this call")
        if len(self._in("joined")) >= self._max:
            raise Rejected(CALL_FULL, f"A call has at most {self._max} participants")
        before = (self._call, dict(self._people))
        now = self._now()
        self._people[user] = CallParticipant(user_id=user, state="joined",
                                             device_id=request.session_id,
                                             device_node=request.node_id or None, joined_at=now)
        if call.state != "active":
            self._set(state="active", answered_at=now)
        try:
            await self._save()
        except UserBusy:
            self._call, self._people = before
            raise Rejected(BUSY, "You are in another call; hang up first") from None
        await self._emit(self._ports.sessions.to_user_except(
            user, request.session_id, "call:ended",
            _wire(CallEnded(call_id=self.key, reason="answered_elsewhere"))))
        await self._to_joined("call:accepted", CallAnswered(call_id=self.key, user_id=user),
                              but=user)

    async def _may_join(self, call: CallRecord, user: str) -> bool:
        """Anyone in the room may join a group call while it goes on."""
        if call.kind != "group" or call.room_id is None or call.state != "active":
            return False
        return user in (await self._ports.directory.room_members(call.room_id) or [])

    async def _reject(self, request: RejectCall) -> None:
        self._live_call()
        person = self._people.get(request.user_id)
        if person is None:
            raise Rejected(NOT_PARTICIPANT, "You are not invited to this call")
        if person.state != "ringing":
            raise Rejected(NOT_RINGING, "This call is not ringing for you")
        await self._decline(request.user_id, request.session_id)

    async def _decline(self, user: str, session_id: str) -> None:
        self._people[user] = msgspec.structs.replace(self._people[user], state="rejected")
        assert self._call is not None
        if not self._in("ringing") and self._call.state != "active":
            await self._end("rejected", declined=(user, session_id))
            return
        await self._save()
        await self._declined(user, session_id, self._in("joined"))

    async def _declined(self, user: str, session_id: str, joined: list[str]) -> None:
        await self._emit(self._ports.sessions.to_user_except(
            user, session_id, "call:ended",
            _wire(CallEnded(call_id=self.key, reason="declined_elsewhere"))))
        data = _wire(CallAnswered(call_id=self.key, user_id=user))
        for user_id in joined:
            device = self._people[user_id].device_id
            if device is not None:
                await self._emit(self._ports.sessions.to_session(device, "call:rejected", data))

    # -- leaving ---------------------------------------------------------------------------

    async def _hang_up(self, request: HangUp) -> None:
        call = self._live_call()
        person = self._people.get(request.user_id)
        if person is None:
            raise Rejected(NOT_PARTICIPANT, "You are not in this call")
        if person.state == "ringing":
            return await self._decline(request.user_id, request.session_id)
        if person.state == "joined":
            await self._leave(call, [person])

    async def _session_gone(self, gone: SessionGone) -> None:
        person = self._people.get(gone.user_id)
        call = self._call
        if call is None or call.state == "ended" or person is None or \
                person.state != "joined" or person.device_id != gone.session_id:
            return  # not this participant's call socket, or nothing left to leave
        await self._leave(call, [person])

    async def _node_left(self, left: NodeLeft) -> None:
        """Every participant whose call socket was on the departed node leaves, as if that
        socket had closed."""
        call = self._call
        if call is None or call.state == "ended":
            return
        gone = [p for p in self._people.values()
                if p.state == "joined" and p.device_node == left.node_id]
        if gone:
            await self._leave(call, gone)

    async def _leave(self, call: CallRecord, people: list[CallParticipant]) -> None:
        """`people` (joined) leave at once: one save, then call:left for each to the rest."""
        if call.state != "active":
            # Only the caller is joined before an answer: they gave up.
            return await self._end("cancelled")
        now = self._now()
        for person in people:
            self._people[person.user_id] = msgspec.structs.replace(person, state="left",
                                                                   left_at=now)
        if len(self._in("joined")) < 2:
            return await self._end("hangup")
        await self._save()
        for person in people:
            await self._to_joined("call:left",
                                  CallLeft(call_id=self.key, user_id=person.user_id))

    async def _ring_over(self) -> None:
        call = self._call
        if call is None or call.state == "ended":
            return
        missed = self._in("ringing")
        if not missed:
            return
        if call.state != "active":
            return await self._end("unanswered")
        for user_id in missed:
            self._people[user_id] = msgspec.structs.replace(self._people[user_id],
                                                            state="missed")
        await self._save()
        ended = _wire(CallEnded(call_id=self.key, reason="unanswered"))
        for user_id in missed:
            await self._emit(self._ports.broadcaster.to_user(user_id, "call:ended", ended))
        await self._emit(self._ports.effects.missed(self._record(), missed))

    async def _end(self, reason: EndReason, declined: tuple[str, str] | None = None) -> None:
        """End the call for everyone; `declined`: (user, device) whose decline ended it."""
        now = self._now()
        joined = [p for p in self._people.values() if p.state == "joined"]
        ringing = self._in("ringing")
        for p in joined:
            self._people[p.user_id] = msgspec.structs.replace(p, state="left", left_at=now)
        for user_id in ringing:
            self._people[user_id] = msgspec.structs.replace(
                self._people[user_id], state="cancelled" if reason == "cancelled" else "missed")
        self._set(state="ended", ended_at=now, end_reason=reason)
        await self._save()
        self._cancel_ring()
        self._cancel_heartbeat()
        if declined is not None:
            await self._declined(*declined, [p.user_id for p in joined])
        ended = _wire(CallEnded(call_id=self.key, reason=reason))
        for p in joined:
            if p.device_id is not None:
                await self._emit(self._ports.sessions.to_session(p.device_id, "call:ended",
                                                                 ended))
        for user_id in ringing:
            await self._emit(self._ports.broadcaster.to_user(user_id, "call:ended", ended))
        record = self._record()
        if reason == "unanswered" and ringing:
            await self._emit(self._ports.effects.missed(record, ringing))
        await self._emit(self._ports.effects.ended(record))

    # -- signaling -------------------------------------------------------------------------

    async def _relay(self, signal: RelaySignal) -> None:
        sender = self._people.get(signal.user_id)
        if sender is None or sender.state != "joined" or sender.device_id != signal.session_id:
            raise Rejected(NOT_PARTICIPANT, "Signal from the device you joined the call on")
        target = self._people.get(signal.to_user_id)
        if target is None or target.state != "joined" or target.user_id == sender.user_id or \
                target.device_id is None:
            raise Rejected(NOT_PARTICIPANT, "The recipient has not joined this call")
        await self._emit(self._ports.sessions.to_session(target.device_id, "call:signal", _wire(
            CallSignalled(call_id=self.key, from_user_id=sender.user_id, kind=signal.kind,
                          payload=signal.payload))))

    # -- helpers ---------------------------------------------------------------------------

    def _live_call(self) -> CallRecord:
        assert self._call is not None
        if self._call.state == "ended":
            raise Rejected(CALL_ENDED, "This call has ended")
        return self._call

    def _in(self, state: str) -> list[str]:
        return [u for u, p in self._people.items() if p.state == state]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.context.clock.time(), UTC)

    def _alive_until(self) -> datetime:
        return self._now() + timedelta(seconds=self._alive_window)

    def _set(self, **changes: Any) -> None:
        assert self._call is not None
        self._call = msgspec.structs.replace(self._call, **changes)

    def _record(self) -> CallRecord:
        assert self._call is not None
        return msgspec.structs.replace(self._call, participants=list(self._people.values()))

    async def _save(self) -> None:
        """Save the call as it now is, from the version last loaded or saved; CallConflict
        (this state is stale: nothing was written) and UserBusy propagate."""
        record = self._record()
        version = await self._ports.store.save(record, self._alive_until())
        self._call = msgspec.structs.replace(record, version=version)

    def _arm_heartbeat(self) -> None:
        if self._heartbeat_timer is None:
            self._heartbeat_timer = self.context.schedule(self._heartbeat_every, Heartbeat())

    def _cancel_ring(self) -> None:
        if self._ring_timer is not None:
            self.context.cancel(self._ring_timer)  # a timer that already fired: no-op
            self._ring_timer = None

    def _cancel_heartbeat(self) -> None:
        if self._heartbeat_timer is not None:
            self.context.cancel(self._heartbeat_timer)
            self._heartbeat_timer = None

    async def _beat(self) -> None:
        if self._call is None or self._call.state == "ended":
            return
        self._arm_heartbeat()
        await self._emit(self._ports.store.touch(self.key, self._alive_until()))

    async def _to_joined(self, event: str, value: msgspec.Struct, but: str | None = None) -> None:
        data = _wire(value)
        for p in self._people.values():
            if p.state == "joined" and p.user_id != but and p.device_id is not None:
                await self._emit(self._ports.sessions.to_session(p.device_id, event, data))

    async def _emit(self, action: Any) -> None:
        # Best effort: the call is saved; a lost emit or notification must not undo it.
        try:
            await action
        except Exception:
            self.context.log.warning("call %s: side effect failed", self.key, exc_info=True)

