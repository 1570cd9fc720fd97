"""Views into hourly buckets: a sink the posts area's ViewCounter calls after each flush it
has written. Our write is a separate transaction, so a failure here must not make the view
counter retry its own (already committed) write: we keep the counts and add them next time."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from server.analytics.ports import AnalyticsStore

log = logging.getLogger("hubbub.analytics.views")


class BucketViewSink:
    def __init__(self, store: AnalyticsStore) -> None:
        self._store = store
        self._carry: dict[str, int] = {}

    async def add_views(self, counts: Mapping[str, int]) -> None:
        batch = dict(self._carry)
        for post_id, count in counts.items():
            batch[post_id] = batch.get(post_id, 0) + count
        self._carry = {}
        try:
            # Bucketed at the database's current hour: within a flush interval of the views.
            await self._store.add_views(None, batch)
        except Exception:
            log.warning("could not add %d post view counts to analytics; will retry",
                        len(batch), exc_info=True)
            for post_id, count in batch.items():
                self._carry[post_id] = self._carry.get(post_id, 0) + count
