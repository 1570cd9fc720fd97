"""Records the post ports exchange with their storage adapters. Never on the wire.

They live in protocols because storage may import only protocols (as protocols.auth's
`Credentials`). Ids are canonical lowercase UUID strings the caller has already checked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class PostDraft(msgspec.Struct, frozen=True, kw_only=True):
    """A post to create. reply_to_id / quote_of_id already point at originals (not reposts);
    mention_names are lowercased usernames, deduplicated, without the author's own."""

    post_id: str
    author_id: str
    text: str
    media_ids: list[str] = []
    reply_to_id: str | None = None
    quote_of_id: str | None = None
    mention_names: list[str] = []


CreateOutcome = Literal[
    "created",
    "daily_limit",  # the author's rolling 24 h allowance is spent: nothing written
    "reply_not_found",  # the replied-to post is missing, deleted or hidden by a block
    "quote_not_found",  # the same for the quoted post
]


class CreateResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: CreateOutcome
    retry_after: float = 0.0  # daily_limit: seconds until one more post is allowed


class PostRef(msgspec.Struct, frozen=True, kw_only=True):
    """A post's identity and state as one viewer may see it (no hydration)."""

    id: str
    author_id: str
    repost_of_id: str | None
    deleted: bool
    hidden: bool  # a block exists between the viewer and the author, either way


class PostRow(msgspec.Struct, frozen=True, kw_only=True):
    """One post as stored, with the viewer's relation to it; PostReader builds `Post`s."""

    id: str
    author_id: str
    username: str
    display_name: str
    text: str
    created_at: datetime
    reply_to_id: str | None
    quote_of_id: str | None
    repost_of_id: str | None
    has_media: bool
    like_count: int
    comment_count: int
    repost_count: int
    quote_count: int
    reply_count: int
    view_count: int
    deleted: bool
    hidden: bool  # a block exists between the viewer and the author, either way
    muted: bool  # the viewer mutes the author
    liked_by_me: bool
    reposted_by_me: bool


LikeOutcome = Literal["changed", "unchanged", "not_found"]


class LikeResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: LikeOutcome
    like_count: int = 0


RepostOutcome = Literal["created", "existing", "not_found"]


class RepostResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: RepostOutcome
    repost_id: str | None = None


class CommentDraft(msgspec.Struct, frozen=True, kw_only=True):
    comment_id: str
    post_id: str
    author_id: str
    text: str
    mention_names: list[str] = []


class PostFilter(msgspec.Struct, frozen=True, kw_only=True):
    """GET /v1/posts filters, resolved. None: no constraint."""

    author_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    has_media: bool | None = None
    q: str | None = None  # websearch_to_tsquery('simple', q) over posts.search
