"""The ports the post services need. Postgres adapters live in storage/postgres (posts.py,
post_rows.py, post_lists.py, likes.py, comments.py); tests/unit/fakes_posts.py holds the
in-memory twins.

Shared rules: ids are canonical lowercase UUID strings whose shape the caller has checked;
"hidden" means a block exists between the viewer and the author, either way; "live" means not
soft-deleted. Every method that changes something writes its domain event to the outbox in
the same transaction, and writes no event when it changes nothing. Counters on a post move
only by the rows a statement really inserted or deleted, so they stay exact under any
concurrency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from protocols.media import Media
from protocols.post_records import (
    CommentDraft,
    CreateResult,
    LikeResult,
    PostDraft,
    PostFilter,
    PostRef,
    PostRow,
    RepostResult,
)
from protocols.posts import Comment, PostMetrics, UserStats
from protocols.users import UserSummary

# Where a newest-first likes page resumes: (liked_at, user id) of the last liker shown.
LikeKey = tuple[datetime, str]
# An open transaction of the adapter's own kind (for Postgres, an asyncpg connection inside
# `transaction()`) to work in, so a caller can commit more with the change (an Idempotency-Key
# record, uploads). None: the adapter opens and commits its own. Work given a transaction
# makes all its reads there too: holding one connection while waiting for another from the
# same pool could starve the pool.
Transaction = Any


class PostStore(Protocol):
    async def ref(self, post_id: str, viewer_id: str | None, *,
                  tx: Transaction = None) -> PostRef | None:
        """The post's identity and state relative to viewer_id (None: nobody, never hidden);
        None when no such row exists. Deleted posts are returned with deleted=True. Read
        inside `tx` when given."""
        ...

    async def create(self, draft: PostDraft, *, daily_limit: int,
                     tx: Transaction = None) -> CreateResult:
        """In one transaction (a savepoint of `tx` when given: a refusal then leaves `tx` as
        it was), serialised per author (an advisory lock) so concurrent creates can never
        overshoot the limit: refuse with "daily_limit" when the author already has
        `daily_limit` non-repost posts (deleted ones included) created in the last 24 hours;
        refuse when reply_to_id / quote_of_id is not live or is hidden from the author;
        otherwise insert the post, claim its media (in order; a claim that fails raises and
        the post is rolled back), add one to the replied-to post's reply_count and the quoted
        post's quote_count, resolve mention_names to users (unknown names, the author, and
        users with a block either way with the author are ignored) and append PostCreated."""
        ...

    async def delete(self, post_id: str, deleted_by: str) -> bool:
        """Soft-delete a live post, in one transaction taking back what it added to other
        posts' counters (reply_count, quote_count, repost_count of a repost's original), and
        append PostDeleted. False (nothing written) when it is not live."""
        ...

    async def repost(self, original_id: str, user_id: str) -> RepostResult:
        """Create user_id's repost of a live, unhidden original (a post row with
        repost_of_id), add one to its repost_count and append PostReposted, in one
        transaction. A user has at most one live repost of a post: when it exists already,
        "existing" with its id and nothing written (also under concurrent calls).
        "not_found" when the original is not live or hidden from user_id."""
        ...

    async def unrepost(self, original_id: str, user_id: str) -> str | None:
        """Soft-delete user_id's live repost of original_id, subtract one from its
        repost_count and append PostDeleted for the repost row. The repost's id, or None
        when there was none (nothing written)."""
        ...

    async def metrics(self, post_id: str) -> PostMetrics | None:
        """The post's counters as stored (views not yet flushed are not included); None
        when no such row exists."""
        ...


class PostRowSource(Protocol):
    async def rows(self, post_ids: Sequence[str], viewer_id: str | None,
                   tx: Transaction = None) -> list[PostRow]:
        """The rows of post_ids and of the posts they repost or quote, two levels deep
        (a repost's original and what that original quotes), in any order, deleted and hidden
        ones included (flagged). Missing ids are left out. A constant number of queries
        whatever the number of ids. Read inside `tx` when given (so its uncommitted posts are
        seen)."""
        ...


class MediaLookup(Protocol):
    async def __call__(self, post_ids: Sequence[str]) -> Mapping[str, list[Media]]:
        """The media of each post, in position order; posts without media may be absent.
        One batch, however many posts."""
        ...


class PostIndex(Protocol):
    async def search(self, viewer_id: str, where: PostFilter, *, limit: int,
                     before: str | None) -> list[str]:
        """Ids of live non-repost posts matching `where`, newest first (id descending),
        strictly before `before`, at most `limit`. Posts hidden from the viewer are left out,
        and so are muted authors' posts unless `where.author_id` names that author."""
        ...

    async def replies(self, post_id: str, viewer_id: str, *, limit: int,
                      after: str | None) -> list[str]:
        """Ids of live replies to post_id, oldest first, strictly after `after`, at most
        `limit`, leaving out replies whose author is hidden from or muted by the viewer."""
        ...

    async def by_user(self, user_id: str, viewer_id: str, *, limit: int,
                      before: str | None) -> list[str]:
        """Ids of user_id's live posts and reposts, newest first, strictly before `before`,
        at most `limit`; reposts whose original is deleted or hidden from the viewer are
        left out."""
        ...

    async def user_stats(self, user_id: str) -> UserStats | None:
        """Counts over the user's account and live posts; None when no such user."""
        ...


class LikeStore(Protocol):
    async def like(self, post_id: str, user_id: str) -> LikeResult:
        """Like a live post not hidden from user_id, idempotently: "changed" when a like row
        was inserted (like_count +1 and PostLiked, same transaction), "unchanged" when it
        existed; like_count is the count after the call. "not_found" otherwise."""
        ...

    async def unlike(self, post_id: str, user_id: str) -> LikeResult:
        """Remove the like if present: "changed" when a row was deleted (like_count -1 and
        PostUnliked, same transaction), "unchanged" when there was none. "not_found" when
        the post is not live or hidden from user_id."""
        ...

    async def likers(self, post_id: str, viewer_id: str, *, limit: int,
                     after: LikeKey | None) -> tuple[list[UserSummary], LikeKey | None]:
        """Who liked the post, newest like first (ties by user id descending), strictly
        after `after`, leaving out users hidden from the viewer. Returns the page and the key
        to resume from, or None when this page is the last."""
        ...


class CommentStore(Protocol):
    async def add(self, draft: CommentDraft) -> Comment | None:
        """In one transaction: insert the comment on a live post not hidden from the author,
        add one to the post's comment_count, resolve mention_names (as PostStore.create)
        and append CommentCreated. None (nothing written) when the post is not there."""
        ...

    async def page(self, post_id: str, viewer_id: str, *, limit: int,
                   after: str | None) -> list[Comment]:
        """Live comments on the post, oldest first (id ascending), strictly after `after`,
        at most `limit`, leaving out authors hidden from or muted by the viewer."""
        ...


class ViewSink(Protocol):
    async def add_views(self, counts: Mapping[str, int]) -> None:
        """Add counts[post_id] to each post's view_count (posts that are gone are skipped),
        in one statement. Raises when the write fails; the caller keeps the counts."""
        ...
