"""Post shapes (contract): a post as clients see it, what they send to create one, and the
shapes around posts: likes, comments, metrics, user stats and the post search query."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from protocols import fields
from protocols.analytics import FollowerGrowth, PostPerformance
from protocols.base import Inbound, Outbound
from protocols.common import PageQuery
from protocols.media import Media
from protocols.users import UserSummary

MAX_POST_CHARS = 500
MAX_MEDIA_PER_POST = 10

# A canonical UUID in any case (services lower-case it).
EntityId = fields.EntityId

# At least one non-space character, and nothing Postgres cannot store (protocols.fields).
PostText = fields.text(min_length=1, max_length=MAX_POST_CHARS, non_blank=True,
                       description="1-500 characters, not only whitespace")


class Post(Outbound):
    id: str
    author: UserSummary
    text: str
    media: list[Media]
    created_at: datetime
    reply_to_id: str | None
    quote_of: Post | None
    repost_of: Post | None
    like_count: int
    comment_count: int
    repost_count: int
    liked_by_me: bool
    reposted_by_me: bool
    quote_count: int = 0
    reply_count: int = 0
    view_count: int = 0


class PostCreate(Inbound):
    text: PostText
    media_ids: Annotated[list[EntityId], msgspec.Meta(max_length=MAX_MEDIA_PER_POST)] = []
    reply_to_id: EntityId | None = None
    quote_of_id: EntityId | None = None


class LikeState(Outbound):
    """`POST|DELETE /v1/posts/{id}/like`: the caller's like and the post's exact count."""

    liked: bool
    like_count: int


class Comment(Outbound):
    id: str
    post_id: str
    author: UserSummary
    text: str
    created_at: datetime


class CommentCreate(Inbound):
    text: PostText


class PostMetrics(Outbound):
    """`GET /v1/posts/{id}/metrics`. views: reads of the post by anyone but its author."""

    post_id: str
    likes: int
    comments: int
    reposts: int
    quotes: int
    replies: int
    views: int


class UserStats(Outbound):
    """`GET /v1/users/{id}/stats`. posts counts replies and quotes, not reposts; the
    *_received counts are over the user's live posts."""

    user_id: str
    followers: int
    following: int
    posts: int
    reposts: int
    likes_received: int
    comments_received: int
    reposts_received: int
    likes_given: int
    # Analytics (server.analytics), added later: totals over the user's posts, their best and
    # worst posts by engagement, and followers gained / lost in the last 28 days.
    views_received: int = 0
    quotes_received: int = 0
    engagements_received: int = 0
    engagement_rate: float | None = None
    best_posts: list[PostPerformance] = []
    worst_posts: list[PostPerformance] = []
    followers_growth: FollowerGrowth = msgspec.field(default_factory=FollowerGrowth)


Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
SearchText = fields.text(
    min_length=1, max_length=256,
    description="Full-text search (web search syntax: words, \"phrases\", -excluded, or)",
)
AuthorRef = fields.line(min_length=1, max_length=64, description="A user id, or @username")


class PostSearch(PageQuery):
    """`GET /v1/posts`: every filter is optional; newest first. since is inclusive, until
    exclusive; has_media=true keeps posts with media, false those without."""

    author: AuthorRef | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    has_media: bool | None = None
    q: SearchText | None = None
