"""Hot chat history in process memory: the HotHistory when REDIS_URL is unset.

The same contract as storage/redis/chat_history.py (one contract test suite runs over both):
per room, the newest `max_messages` messages younger than `max_age` seconds, by seq. On top,
at most `max_rooms` rooms are kept (the least recently written is forgotten first), so the
process's memory stays bounded however many rooms exist; a forgotten room simply reads from
Postgres until it is written again.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable

from protocols.chat import Message


class MemoryChatHistory:
    def __init__(self, *, max_messages: int = 1000, max_age: float = 7 * 24 * 3600,
                 max_rooms: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if max_messages < 1 or max_age <= 0 or max_rooms < 1:
            raise ValueError("max_messages, max_age and max_rooms must be positive")
        self._max_messages = max_messages
        self._max_age = max_age
        self._max_rooms = max_rooms
        self._clock = clock  # wall clock: compared with the messages' created_at
        # room -> (ascending seqs, their messages); rooms in least-recently-written order.
        self._rooms: OrderedDict[str, tuple[list[int], list[Message]]] = OrderedDict()

    def _cutoff(self) -> float:
        return self._clock() - self._max_age

    async def append(self, message: Message) -> None:
        seqs, messages = self._rooms.get(message.room_id) or ([], [])
        at = bisect.bisect_left(seqs, message.seq)
        if at < len(seqs) and seqs[at] == message.seq:
            messages[at] = message
        else:
            seqs.insert(at, message.seq)
            messages.insert(at, message)
        cutoff = self._cutoff()
        drop = max(0, len(seqs) - self._max_messages)
        while drop < len(messages) and messages[drop].created_at.timestamp() < cutoff:
            drop += 1
        del seqs[:drop], messages[:drop]
        self._rooms[message.room_id] = (seqs, messages)
        self._rooms.move_to_end(message.room_id)
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)

    async def after(self, room_id: str, after_seq: int, limit: int) -> list[Message]:
        entry = self._rooms.get(room_id)
        if entry is None or limit < 1:
            return []
        seqs, messages = entry
        start = bisect.bisect_right(seqs, after_seq)
        cutoff = self._cutoff()
        return [m for m in messages[start:start + limit] if m.created_at.timestamp() >= cutoff]
