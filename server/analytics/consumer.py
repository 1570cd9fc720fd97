"""The "analytics" consumer: turns post and follow events into counter upserts, exactly once
per event (the store claims the event id in processed_events in the same transaction)."""

from __future__ import annotations

from protocols.events import EVENT_TYPES, EventEnvelope, payload
from server.analytics.effects import effects_for
from server.analytics.ports import AnalyticsStore

CONSUMER = "analytics"
TOPICS = ("hubbub.users", "hubbub.posts")


class AnalyticsConsumer:
    def __init__(self, store: AnalyticsStore) -> None:
        self._store = store

    async def handle(self, event: EventEnvelope) -> None:
        """The EventHandler subscribed as CONSUMER to TOPICS."""
        if event.type not in EVENT_TYPES:
            return  # a newer producer's event type: nothing to count yet
        effects = effects_for(payload(event), event.occurred_at)
        if effects:
            await self._store.apply(CONSUMER, event.id, effects)
