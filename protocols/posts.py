"""Post shapes (contract): a post as clients see it, and what they send to create one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from protocols.base import Inbound, Outbound
from protocols.media import Media
from protocols.users import UserSummary

MAX_POST_CHARS = 500
MAX_MEDIA_PER_POST = 10

PostText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_POST_CHARS)]


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
    media_ids: Annotated[list[str], msgspec.Meta(max_length=MAX_MEDIA_PER_POST)] = []
    reply_to_id: str | None = None
    quote_of_id: str | None = None
