"""The analytics store port (adapter: storage.postgres.analytics.PostgresAnalyticsStore)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol

from protocols.analytics_records import (
    ActivityRow,
    Effect,
    HourRow,
    PostOwner,
    PostTotals,
    UserTotals,
)


class AnalyticsStore(Protocol):
    async def apply(self, consumer: str, event_id: str, effects: Sequence[Effect]) -> bool:
        """Apply every effect and claim the event for `consumer` in one transaction; False
        (nothing changed) when the event was applied before. Effects on posts or users that
        no longer exist are skipped."""
        ...

    async def add_views(self, hour: datetime | None, counts: Mapping[str, int]) -> None:
        """Add view counts to each post's bucket of `hour` (None: the database's current
        hour) and to its totals, in one transaction. Raises when the write fails."""
        ...

    async def owner(self, post_id: str) -> PostOwner | None:
        """The author and creation time of a live post; None when missing or deleted."""
        ...

    async def hours(self, post_id: str, start: datetime, end: datetime) -> list[HourRow]:
        """The post's stored buckets with start <= hour < end, oldest first."""
        ...

    async def activity(self, user_id: str, start: datetime, end: datetime) -> list[ActivityRow]:
        """Followers' activity around the user with start <= hour < end."""
        ...

    async def user_totals(self, user_id: str) -> UserTotals:
        """Sums over the user's live posts."""
        ...

    async def ranked_posts(self, user_id: str, *, best: bool, limit: int) -> list[PostTotals]:
        """The user's live posts, most engaged first (best) or least engaged first."""
        ...

    async def follower_changes(self, user_id: str, since: date) -> tuple[int, int]:
        """(gained, lost) followers on UTC days >= since."""
        ...
