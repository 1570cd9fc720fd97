"""What each domain event changes in the analytics counters: a pure mapping, so the rules
are unit-tested without a database. Times come from the event (`occurred_at`), never the
clock at consumption, so a redelivered or late event lands in the hour it happened."""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.analytics_records import (
    Effect,
    FollowerActive,
    FollowerChange,
    FollowerEngaged,
    PostBump,
    PostGone,
    PostSeen,
)
from protocols.events import (
    CommentCreated,
    EventData,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    PostLiked,
    PostReposted,
    PostUnliked,
)


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def effects_for(data: EventData, occurred_at: datetime) -> list[Effect]:
    hour = hour_of(occurred_at)
    match data:
        case PostCreated():
            return _post_created(data, hour)
        case PostDeleted():
            return [PostGone(data.post_id)]
        case PostLiked():
            return [PostBump(data.post_id, hour, likes=1),
                    *_engaged(data.author_id, data.user_id, hour)]
        case PostUnliked():
            return [PostBump(data.post_id, hour, unlikes=1)]
        case CommentCreated():
            return [PostBump(data.post_id, hour, comments=1),
                    *_engaged(data.post_author_id, data.author_id, hour)]
        case PostReposted():
            return [PostBump(data.post_id, hour, reposts=1),
                    *_engaged(data.original_author_id, data.user_id, hour)]
        case FollowCreated():
            return [FollowerChange(data.followee_id, hour.date(), gained=1)]
        case FollowDeleted():
            return [FollowerChange(data.followee_id, hour.date(), lost=1)]
        case _:
            return []


def _post_created(data: PostCreated, hour: datetime) -> list[Effect]:
    out: list[Effect] = [PostSeen(data.post_id), FollowerActive(data.author_id, hour)]
    if data.quote_of_id is not None:
        out.append(PostBump(data.quote_of_id, hour, quotes=1))
        if data.quote_of_author_id is not None:
            out.append(FollowerEngaged(data.quote_of_author_id, data.author_id, hour))
    # A reply is engagement for best times; it is not one of a post's listed metrics.
    if data.reply_to_author_id is not None and data.reply_to_author_id != data.author_id:
        out.append(FollowerEngaged(data.reply_to_author_id, data.author_id, hour))
    return out


def _engaged(author_id: str, actor_id: str, hour: datetime) -> list[Effect]:
    active = FollowerActive(actor_id, hour)
    if author_id == actor_id:  # your own likes are no evidence of your audience
        return [active]
    return [FollowerEngaged(author_id, actor_id, hour), active]
