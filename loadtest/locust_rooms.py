"""Seats this process's chat users in group rooms of LOADTEST_ROOM_SIZE members.

A group needs a second member to exist (`POST /v1/rooms` refuses an empty member list), so
the first chat user waits; the next one creates the room with the waiting one in it (and
owns it), and the following ones are added by the owner (`POST /v1/rooms/{id}/members`,
with the owner's token: a friend adding you) until the room is full. Everybody joins the
rooms they are in over their socket. Greenlets switch only on I/O, so the bookkeeping below
is settled before each request goes out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from gevent.event import AsyncResult
from locust_settings import SETTINGS


class Member(Protocol):
    me: str
    stopping: bool

    @property
    def auth(self) -> dict[str, str]: ...

    def rest(self, method: str, path: str, name: str, **kwargs: Any) -> Any: ...

    def adopt(self, room_id: str, *, now: bool = False) -> None: ...


@dataclass(eq=False)
class OpenRoom:
    owner: Member
    seats: int  # members so far, counting those being added
    # The room id once `POST /v1/rooms` answered ("" when it failed): newcomers that come
    # while it is being created wait for it.
    created: AsyncResult = field(default_factory=AsyncResult)


class RoomBoard:
    def __init__(self, size: int) -> None:
        self.size = size
        self.open: OpenRoom | None = None
        self.waiting: Member | None = None

    def seat(self, user: Member) -> None:
        room = self.open
        if room is not None and room.seats < self.size and not room.owner.stopping:
            room.seats += 1
            room_id = room.created.wait(SETTINGS.ack_timeout)  # None: still not there
            if room_id and user.rest("POST", f"/v1/rooms/{room_id}/members",
                                     "/v1/rooms/{id}/members", json={"user_ids": [user.me]},
                                     headers=room.owner.auth) is not None:
                user.adopt(room_id, now=True)
            return
        waiting = self.waiting
        if waiting is None or waiting.stopping:
            self.waiting = user
            return
        self.waiting = None
        self.open = room = OpenRoom(user, 2)
        created = user.rest("POST", "/v1/rooms", "/v1/rooms",
                            json={"kind": "group", "member_ids": [waiting.me],
                                  "name": f"Load room {uuid.uuid4().hex[:6]}"})
        room.created.set(created["id"] if created else "")
        if created is None:
            return
        user.adopt(created["id"], now=True)
        waiting.adopt(created["id"])

    def leave(self, user: Member) -> None:
        if self.waiting is user:
            self.waiting = None
        if self.open is not None and self.open.owner is user:
            self.open = None  # nobody left to add members: the next ones start a new room


ROOMS = RoomBoard(SETTINGS.room_size)
