"""The rules of chat over REST: creating rooms, membership, room lists and history.

Messages themselves always go through the room's RoomActor (`RoomMessenger`), the single
writer of its sequence, so a message sent over REST gets the next seq and arrives live on the
room's sockets exactly like one sent over Socket.IO. Reads (rooms, history) come straight
from the store: every acknowledged message is committed there first.

Visibility: a room is 404 to anyone who is not a member. Users the caller blocks, or who
block the caller, are 404 `user_not_found` as everywhere in the API; ids that name no account
are 422; a block between two other people who would share the room is 403 `blocked_member`.
"""

from __future__ import annotations

from typing import Literal, Protocol

from actors.errors import ActorCrashed, ActorStopped, AskTimeout, Rejected
from actors.errors import Unavailable as ActorUnavailable
from actors.ports import RoomStore
from protocols.chat import MAX_GROUP_MEMBERS, HistoryQuery, MembersChange, Message, Room, RoomCreate
from protocols.common import Page, PageQuery
from protocols.fields import Seq
from protocols.ids import is_id, new_id
from protocols.problems import FieldError
from protocols.room_messages import SendMessage
from server.auth.principal import Principal
from server.chat.ports import RoomDirectory
from server.http.cursors import TimeIdKey, decode_cursor, encode_cursor
from server.http.problems import (
    Conflict,
    Forbidden,
    NotFound,
    ProblemError,
    Unavailable,
    ValidationFailed,
)

# History cursor: ("a", after_seq, before_seq or 0) reads forward, ("b", before_seq, 0) back.
# Seqs are bounded like the query's (a bigint): a forged cursor is a 400, never a 500.
HistoryKey = tuple[Literal["a", "b"], Seq, Seq]


class RoomMessenger(Protocol):
    """How the REST side reaches a RoomActor (server/chat/wiring.py: the actor system)."""

    async def send(self, room_id: str, request: SendMessage) -> Message:
        """Ask the room to take the message. Raises what an ask raises: Rejected (e.g.
        not_member), AskTimeout, ActorCrashed, ActorStopped."""
        ...

    async def members_changed(self, room_id: str, removed: list[str]) -> None:
        """Have the room reload its members from the store (after the commit); returns once
        it has: no removed member can send or join any more, and the sockets of `removed`
        have been taken out of the room's live stream."""
        ...


def _room_not_found() -> NotFound:
    return NotFound("No such room, or you are not a member", code="room_not_found")


class ChatService:
    def __init__(self, directory: RoomDirectory, messages: RoomStore, messenger: RoomMessenger,
                 *, max_members: int = MAX_GROUP_MEMBERS) -> None:
        self._directory = directory
        self._messages = messages
        self._messenger = messenger
        self._max_members = max_members

    # -- rooms --------------------------------------------------------------------------------

    async def create_room(self, caller: Principal, body: RoomCreate) -> tuple[Room, bool]:
        """The room and whether it is new (an existing direct room is returned as it is)."""
        me = caller.user_id
        others = [u for u in _user_ids(body.member_ids, "member_ids") if u != me]
        if body.kind == "direct":
            if len(others) != 1:
                raise _invalid("member_ids", "A direct room has exactly one other member")
            if body.name is not None:
                raise _invalid("name", "Direct rooms have no name")
        elif 1 + len(others) > self._max_members:
            raise _invalid("member_ids", f"A group has at most {self._max_members} members")
        await self._check_joinable(me, others, [me, *others], "member_ids")
        if body.kind == "direct":
            return await self._directory.create_direct(me, others[0])
        return await self._directory.create_group(new_id(), me, others, body.name), True

    async def room(self, caller: Principal, room_id: str) -> Room:
        room = await self._directory.room(_room_key(room_id), caller.user_id)
        if room is None:
            raise _room_not_found()
        return room

    async def rooms(self, caller: Principal, query: PageQuery) -> Page[Room]:
        after = decode_cursor(query.cursor, TimeIdKey) if query.cursor else None
        items, last = await self._directory.rooms(caller.user_id, limit=query.limit,
                                                  after=after)
        return Page(items=items, next_cursor=encode_cursor(last) if last else None)

    async def add_members(self, caller: Principal, room_id: str, body: MembersChange) -> Room:
        room = await self._group_of_member(caller, room_id)
        if await self._directory.role(room.id, caller.user_id) != "owner":
            raise Forbidden("Only the room's owner adds members", code="not_owner")
        new = [u for u in _user_ids(body.user_ids, "user_ids") if u not in room.member_ids]
        if new:
            await self._check_joinable(caller.user_id, new, [*room.member_ids, *new],
                                       "user_ids")
            if not await self._directory.add_members(room.id, new,
                                                     max_members=self._max_members):
                raise _invalid("user_ids", f"A group has at most {self._max_members} members")
            await self._messenger.members_changed(room.id, [])
        return await self.room(caller, room.id)

    async def remove_members(self, caller: Principal, room_id: str, body: MembersChange) -> None:
        room = await self._group_of_member(caller, room_id)
        ids = _user_ids(body.user_ids, "user_ids")
        if any(u != caller.user_id for u in ids) and \
                await self._directory.role(room.id, caller.user_id) != "owner":
            raise Forbidden("Only the room's owner removes others; you may remove yourself",
                            code="not_owner")
        removed = await self._directory.remove_members(room.id, ids)
        if removed:
            await self._messenger.members_changed(room.id, removed)

    # -- messages -----------------------------------------------------------------------------

    async def history(self, caller: Principal, room_id: str,
                      query: HistoryQuery) -> Page[Message]:
        room = await self.room(caller, room_id)
        after, before = query.after_seq, query.before_seq
        if query.cursor:
            direction, first, second = decode_cursor(query.cursor, HistoryKey)
            after, before = (first, second or None) if direction == "a" else (None, first)
        if after is not None:
            items = await self._messages.after(room.id, after, query.limit)
            if before is not None:
                items = [m for m in items if m.seq < before]
            more = len(items) == query.limit and items[-1].seq < room.last_seq and (
                before is None or items[-1].seq < before - 1)
            cursor = encode_cursor(("a", items[-1].seq, before or 0)) if more else None
        else:
            items = await self._messages.before(room.id, before, query.limit)
            more = bool(items) and items[0].seq > 1
            cursor = encode_cursor(("b", items[0].seq, 0)) if more else None
        return Page(items=items, next_cursor=cursor)

    async def send(self, caller: Principal, room_id: str, text: str, client_id: str) -> Message:
        request = SendMessage(user_id=caller.user_id, client_id=client_id, text=text)
        try:
            return await self._messenger.send(_room_key(room_id), request)
        except Rejected as refusal:
            raise _problem_for(refusal) from None
        except AskTimeout:
            raise Unavailable("The room did not answer in time; retry with the same client_id",
                              code="timeout") from None
        except (ActorCrashed, ActorStopped, ActorUnavailable):
            raise Unavailable("The room could not take the message; retry with the same "
                              "client_id", code="room_unavailable") from None

    # -- helpers ------------------------------------------------------------------------------

    async def _group_of_member(self, caller: Principal, room_id: str) -> Room:
        room = await self.room(caller, room_id)
        if room.kind != "group":
            raise Conflict("A direct room's members never change", code="direct_room")
        return room

    async def _check_joinable(self, caller_id: str, new: list[str], everyone: list[str],
                              field: str) -> None:
        """New members must exist and share the room with nobody they block or who blocks
        them."""
        if not new:
            return
        missing = set(new) - await self._directory.existing_users(new)
        if missing:
            raise _invalid(field, f"No such users: {', '.join(sorted(missing))}")
        blocks = await self._directory.blocks_between(new, everyone)
        if any(caller_id in pair for pair in blocks):
            raise NotFound("No such user", code="user_not_found")
        if blocks:
            raise Forbidden("Someone you named cannot be in a room with one of its members",
                            code="blocked_member")


def _room_key(room_id: str) -> str:
    """The canonical (lowercase) id: one room is one RoomActor whatever the case given."""
    if not is_id(room_id):
        raise _room_not_found()
    return room_id.lower()


def _user_ids(raw: list[str], field: str) -> list[str]:
    """Distinct canonical ids, in the order given; 422 for anything that is not an id."""
    ids = [u.lower() for u in raw]
    bad = [u[:40] for u in ids if not is_id(u)]
    if bad:
        raise _invalid(field, f"Not user ids: {', '.join(bad[:5])}")
    return list(dict.fromkeys(ids))


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(field=field, message=message)])


def _problem_for(refusal: Rejected) -> ProblemError:
    if refusal.code == "not_member":
        return _room_not_found()
    if refusal.code == "invalid":
        return _invalid("text", refusal.message)
    return Conflict(refusal.message, code=refusal.code)
