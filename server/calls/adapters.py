"""The CallActor's ports that live at the edge: the directory (over the chat area's rooms) and
the effects of a missed or finished call (notifications, the room's history)."""

from __future__ import annotations

import logging

from actors.ports import RoomStore
from actors.room import RoomActor
from actors.system import ActorSystem
from protocols.call_messages import CallRecord
from protocols.ids import new_id
from protocols.notifications import NotificationDraft
from protocols.room_messages import AppendSystemMessage
from server.calls.service import summary
from server.chat.ports import RoomDirectory
from server.notifications.ports import NotificationSink, NotificationStore

log = logging.getLogger("hubbub.calls")
# processed_events consumer name: one call_missed batch per call, even if asked again.
MISSED_CONSUMER = "calls.missed"


class ChatCallDirectory:
    """actors.ports.CallDirectory over the chat area's RoomDirectory and RoomStore."""

    def __init__(self, rooms: RoomDirectory, store: RoomStore) -> None:
        self._rooms = rooms
        self._store = store

    async def room_members(self, room_id: str) -> list[str] | None:
        room = await self._store.load(room_id)
        return [m.user_id for m in room.members] if room is not None else None

    async def reachable(self, caller_id: str, user_ids: list[str]) -> set[str]:
        existing = await self._rooms.existing_users(user_ids)
        blocks = await self._rooms.blocks_between([caller_id], list(existing))
        return {u for u in existing if frozenset((caller_id, u)) not in blocks}

    async def direct_room(self, user_a: str, user_b: str) -> str:
        room, _ = await self._rooms.create_direct(user_a, user_b)
        return room.id


class CallOutcomes:
    """actors.ports.CallEffects: `call_missed` notifications (pushed live through the
    notifications area's sinks) and the summary in the room's history via its RoomActor."""

    def __init__(self, system: ActorSystem, notifications: NotificationStore,
                 sinks: list[NotificationSink]) -> None:
        self._system = system
        self._notifications = notifications
        self._sinks = sinks

    async def missed(self, record: CallRecord, user_ids: list[str]) -> None:
        data = {"call_id": record.id, "media": record.media, "room_id": record.room_id}
        drafts = [NotificationDraft(id=new_id(), user_id=u, kind="call_missed",
                                    actor_id=record.initiator_id, data=data)
                  for u in user_ids]
        created = await self._notifications.create(MISSED_CONSUMER, record.id, drafts)
        for user_id, notification in created:
            for sink in self._sinks:
                try:
                    await sink(user_id, notification)
                except Exception:
                    log.warning("call_missed push to %s failed", user_id, exc_info=True)

    async def ended(self, record: CallRecord) -> None:
        if record.room_id is None:
            return
        # A tell: the room appends it with its next seq; the client_id makes it idempotent.
        await self._system.ref(RoomActor, record.room_id).tell(AppendSystemMessage(
            sender_id=record.initiator_id, client_id=f"call:{record.id}",
            text=summary(record)))
