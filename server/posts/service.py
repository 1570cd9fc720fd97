"""The rules of posts: creating (limits, replies, quotes, mentions), reading, deleting,
reposting, listing, metrics and user stats, over the PostStore / PostIndex ports.

Anything the caller may not see (missing, deleted, or a block either way with its author) is
a 404 `post_not_found`, never a different status. Likes and comments live in
server.posts.engagement.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from protocols.common import Page, PageQuery
from protocols.ids import is_id, new_id
from protocols.post_records import PostDraft, PostFilter
from protocols.posts import Post, PostCreate, PostMetrics, PostSearch, UserStats
from protocols.problems import FieldError
from server.auth.principal import Principal
from server.http.problems import Forbidden, NotFound, RateLimited, ValidationFailed
from server.posts.access import (
    UserLookup,
    after_id,
    next_cursor,
    not_found,
    original,
    post_id,
    visible,
)
from server.posts.mentions import mentioned_names
from server.posts.ports import PostIndex, PostStore, Transaction
from server.posts.reader import PostReader
from server.posts.views import ViewCounter

MODERATING_ROLES = ("moderator", "admin")


class PostService:
    def __init__(self, *, posts: PostStore, index: PostIndex, reader: PostReader,
                 users: UserLookup, views: ViewCounter | None, daily_limit: int) -> None:
        self._posts = posts
        self._index = index
        self._reader = reader
        self._users = users
        self._views = views
        self._daily_limit = daily_limit

    async def create(self, caller: Principal, body: PostCreate, *,
                     tx: Transaction = None) -> Post:
        """Create a post (a reply with reply_to_id, a quote with quote_of_id). A reply or
        quote of a repost goes to its original. 422 when a referenced post or upload is not
        available; 429 `daily_limit` when the caller's daily allowance is spent. With `tx`,
        everything happens inside that open transaction, reads included (the returned post
        then has no media: re-read it once committed)."""
        reply_to = await self._target(caller, body.reply_to_id, "reply_to_id", tx)
        quote_of = await self._target(caller, body.quote_of_id, "quote_of_id", tx)
        draft = PostDraft(post_id=new_id(), author_id=caller.user_id, text=body.text,
                          media_ids=[m.lower() for m in body.media_ids], reply_to_id=reply_to,
                          quote_of_id=quote_of, mention_names=mentioned_names(body.text))
        result = await self._posts.create(draft, daily_limit=self._daily_limit, tx=tx)
        if result.outcome == "daily_limit":
            raise RateLimited(result.retry_after,
                              f"You may create {self._daily_limit} posts per 24 hours",
                              code="daily_limit")
        if result.outcome == "reply_not_found":
            raise _target_missing("reply_to_id")
        if result.outcome == "quote_not_found":
            raise _target_missing("quote_of_id")
        post = await self._reader.get(draft.post_id, caller.user_id, tx=tx)
        if post is None:  # cannot happen inside the creating transaction
            raise not_found(draft.post_id)
        return post

    async def read(self, caller: Principal, raw_id: str) -> Post | None:
        """The post as the caller sees it, without counting a view; None when not visible."""
        return await self._reader.get(post_id(raw_id), caller.user_id)

    async def get(self, caller: Principal, raw_id: str) -> Post:
        """The post as the caller sees it; a read by anyone but its author counts a view
        (of the original, for a repost)."""
        post = await self._reader.get(post_id(raw_id), caller.user_id)
        if post is None:
            raise not_found(raw_id)
        seen = post.repost_of or post
        if self._views is not None and seen.author.id != caller.user_id:
            self._views.record(seen.id)
        return post

    async def delete(self, caller: Principal, raw_id: str) -> None:
        """Soft-delete: the author, a moderator or an admin; others 403. Moderators and admins
        see through blocks here; to anyone else a hidden post is a 404."""
        ref = await self._posts.ref(post_id(raw_id), caller.user_id)
        moderator = caller.has_role(*MODERATING_ROLES)
        if ref is None or ref.deleted or (ref.hidden and not moderator):
            raise not_found(raw_id)
        if ref.author_id != caller.user_id and not moderator:
            raise Forbidden("Only the author, a moderator or an admin may delete a post",
                            code="not_author")
        if not await self._posts.delete(ref.id, caller.user_id):
            raise not_found(raw_id)

    async def repost(self, caller: Principal, raw_id: str) -> tuple[Post, bool]:
        """Repost the post (its original, when it is a repost itself). Idempotent: a second
        call returns the live repost. Returns the repost and whether it is new."""
        target = await original(self._posts, raw_id, caller.user_id)
        result = await self._posts.repost(target.id, caller.user_id)
        if result.outcome == "not_found" or result.repost_id is None:
            raise not_found(raw_id)
        return await self._read(caller, result.repost_id), result.outcome == "created"

    async def unrepost(self, caller: Principal, raw_id: str) -> None:
        """Undo the caller's repost of the post (or of its original), idempotently. Works even
        when the original was deleted or is now hidden, so a repost can always be taken back."""
        ref = await self._posts.ref(post_id(raw_id), caller.user_id)
        if ref is None:
            raise not_found(raw_id)
        await self._posts.unrepost(ref.repost_of_id or ref.id, caller.user_id)

    async def search(self, caller: Principal, query: PostSearch) -> Page[Post]:
        before = after_id(query.cursor)
        where = PostFilter(since=_utc(query.since, "since"), until=_utc(query.until, "until"),
                           has_media=query.has_media, q=query.q)
        if query.author is not None:
            author_id = await self._author(caller, query.author)
            if author_id is None:
                return Page(items=[])
            where = msgspec.structs.replace(where, author_id=author_id)
        ids = await self._index.search(caller.user_id, where, limit=query.limit + 1,
                                       before=before)
        return await self._page(caller, ids, query.limit)

    async def replies(self, caller: Principal, raw_id: str, query: PageQuery) -> Page[Post]:
        """Replies to the post, oldest first (conversation order)."""
        after = after_id(query.cursor)
        target = await original(self._posts, raw_id, caller.user_id)
        ids = await self._index.replies(target.id, caller.user_id, limit=query.limit + 1,
                                        after=after)
        return await self._page(caller, ids, query.limit)

    async def by_user(self, caller: Principal, ref: str, query: PageQuery) -> Page[Post]:
        """A user's posts and reposts, newest first."""
        before = after_id(query.cursor)
        user = await self._users.profile(caller, ref)
        ids = await self._index.by_user(user.id, caller.user_id, limit=query.limit + 1,
                                        before=before)
        return await self._page(caller, ids, query.limit)

    async def user_stats(self, caller: Principal, ref: str) -> UserStats:
        user = await self._users.profile(caller, ref)
        stats = await self._index.user_stats(user.id)
        if stats is None:
            raise NotFound(f"No user {ref!r}", code="user_not_found")
        return stats

    async def metrics(self, caller: Principal, raw_id: str) -> PostMetrics:
        """The counters of the post (of the original, for a repost); views include those
        this node has counted but not yet written."""
        target = await original(self._posts, raw_id, caller.user_id)
        metrics = await self._posts.metrics(target.id)
        if metrics is None:
            raise not_found(raw_id)
        if self._views is not None:
            unflushed = self._views.unflushed(target.id)
            metrics = msgspec.structs.replace(metrics, views=metrics.views + unflushed)
        return metrics

    # Helpers

    async def _target(self, caller: Principal, raw: str | None, field: str,
                      tx: Transaction) -> str | None:
        """The original a reply or quote points at; 422 when the caller cannot see it."""
        if raw is None:
            return None
        ref = await self._posts.ref(raw.lower(), caller.user_id, tx=tx)
        if visible(ref) and ref is not None and ref.repost_of_id is not None:
            ref = await self._posts.ref(ref.repost_of_id, caller.user_id, tx=tx)
        if ref is None or not visible(ref):
            raise _target_missing(field)
        return ref.id

    async def _author(self, caller: Principal, ref: str) -> str | None:
        """The author filter's user id; None when there is no such user (or a block hides
        them): the page is empty then, as for any filter that matches nothing."""
        if not (ref == "me" or ref.startswith("@") or is_id(ref)):
            raise _invalid("author", "Give a user id or @username", "invalid")
        try:
            return (await self._users.profile(caller, ref)).id
        except NotFound:
            return None

    async def _page(self, caller: Principal, ids: list[str], limit: int) -> Page[Post]:
        items = await self._reader.get_many(ids[:limit], caller.user_id)
        return Page(items=items, next_cursor=next_cursor(ids, limit))

    async def _read(self, caller: Principal, raw_id: str) -> Post:
        post = await self._reader.get(raw_id, caller.user_id)
        if post is None:  # deleted between the write and this read
            raise not_found(raw_id)
        return post


def _utc(value: datetime | None, field: str) -> datetime | None:
    """value in UTC; 422 when it falls outside what Postgres can store once in UTC."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _invalid(field, "The time is out of range", "invalid") from None


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])


def _target_missing(field: str) -> ValidationFailed:
    code = "reply_not_found" if field == "reply_to_id" else "quote_not_found"
    return _invalid(field, "No such post, or you may not see it", code)
