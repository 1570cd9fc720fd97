"""Internal records between the analytics services (server.analytics) and their store
(storage.postgres.analytics): the effects one event has, and the rows reads return.
Not wire shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class PostSeen:
    """A post exists: its totals row is created (author and creation time)."""

    post_id: str


@dataclass(frozen=True, slots=True)
class PostGone:
    """A post was deleted: left out of best / worst posts from now on."""

    post_id: str


@dataclass(frozen=True, slots=True)
class PostBump:
    """Add to a post's bucket of `hour` (a UTC hour start) and to its totals."""

    post_id: str
    hour: datetime
    likes: int = 0
    unlikes: int = 0
    comments: int = 0
    reposts: int = 0
    quotes: int = 0


@dataclass(frozen=True, slots=True)
class FollowerEngaged:
    """`actor_id` engaged with `author_id`'s post in `hour`: counted for the author only when
    the actor follows them at the time the event is applied."""

    author_id: str
    actor_id: str
    hour: datetime


@dataclass(frozen=True, slots=True)
class FollowerActive:
    """`actor_id` did something in `hour`: counted for every user the actor follows."""

    actor_id: str
    hour: datetime


@dataclass(frozen=True, slots=True)
class FollowerChange:
    user_id: str
    day: date
    gained: int = 0
    lost: int = 0


Effect = PostSeen | PostGone | PostBump | FollowerEngaged | FollowerActive | FollowerChange


@dataclass(frozen=True, slots=True)
class HourRow:
    """One stored hourly bucket of a post."""

    hour: datetime
    views: int = 0
    likes: int = 0
    unlikes: int = 0
    comments: int = 0
    reposts: int = 0
    quotes: int = 0


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """Followers' activity around a user in one UTC hour."""

    hour: datetime
    engaged: int = 0
    active: int = 0


@dataclass(frozen=True, slots=True)
class PostOwner:
    author_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PostTotals:
    post_id: str
    created_at: datetime
    views: int
    likes: int
    unlikes: int
    comments: int
    reposts: int
    quotes: int
    engagements: int


@dataclass(frozen=True, slots=True)
class UserTotals:
    views: int = 0
    likes: int = 0
    unlikes: int = 0
    comments: int = 0
    reposts: int = 0
    quotes: int = 0
    engagements: int = 0
