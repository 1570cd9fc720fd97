"""The typed registry of everything that may cross a node boundary as an actor message or an
ask's reply: each type under a stable name, encoded with msgspec MessagePack. Never pickle: a
node decodes only the types listed here, into exactly those types.

Adding a message kind: add its Struct to `ACTOR_MESSAGES` (or a reply type to
`ACTOR_REPLIES`). Names are class names, so renaming a Struct is a wire change: a rolling
upgrade needs both names for one release.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocols.call_messages import (
    AcceptCall,
    HangUp,
    RejectCall,
    RelaySignal,
    SessionGone,
    StartCall,
    StartResult,
)
from protocols.chat import Message
from protocols.cluster import Activate, NodeLeft
from protocols.room_messages import (
    AppendSystemMessage,
    JoinResult,
    JoinRoom,
    MarkRead,
    MembershipChanged,
    SendMessage,
    SetTyping,
)
from protocols.socket import PresenceEvent
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

ACTOR_MESSAGES: tuple[type[msgspec.Struct], ...] = (
    # any kind
    Activate, NodeLeft,
    # UserActor
    SessionOpened, SessionClosed, SetPresence, GetPresence, PushNotification, PushFeedItem,
    NotificationsRead, GetUnread,
    # RoomActor
    JoinRoom, SendMessage, SetTyping, MarkRead, MembershipChanged, AppendSystemMessage,
    # CallActor
    StartCall, AcceptCall, RejectCall, HangUp, RelaySignal, SessionGone,
)
ACTOR_REPLIES: tuple[type[msgspec.Struct], ...] = (
    PresenceEvent, JoinResult, Message, StartResult,
)
# Plain values an ask may answer with, under fixed names.
_SCALARS: dict[str, Any] = {"none": type(None), "int": int, "bool": bool, "str": str}


class UnknownType(ValueError):
    """A value (or a name on the wire) that the registry does not know."""


class MessageRegistry:
    """Encodes a registered value to (name, bytes) and back. One instance per process."""

    def __init__(self, types: tuple[type[msgspec.Struct], ...] = ACTOR_MESSAGES + ACTOR_REPLIES
                 ) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._by_name: dict[str, msgspec.msgpack.Decoder[Any]] = {
            name: msgspec.msgpack.Decoder(kind) for name, kind in _SCALARS.items()}
        self._names: dict[type, str] = {kind: name for name, kind in _SCALARS.items()}
        for kind in types:
            name = kind.__name__
            if name in self._by_name:
                raise ValueError(f"two registered types are named {name}")
            self._by_name[name] = msgspec.msgpack.Decoder(kind)
            self._names[kind] = name

    def knows(self, value: Any) -> bool:
        return type(value) in self._names

    def encode(self, value: Any) -> tuple[str, bytes]:
        name = self._names.get(type(value))
        if name is None:
            raise UnknownType(f"{type(value).__name__} is not a registered actor message")
        return name, self._encoder.encode(value)

    def decode(self, name: str, body: bytes) -> Any:
        """Raises UnknownType for a name not registered here, msgspec errors for a body that
        is not that type."""
        decoder = self._by_name.get(name)
        if decoder is None:
            raise UnknownType(f"{name!r} is not a registered actor message")
        return decoder.decode(body)
