"""Likes and comments on posts. Both go to the original when aimed at a repost; a post the
caller may not see is a 404 `post_not_found`."""

from __future__ import annotations

from protocols.common import Page, PageQuery
from protocols.ids import new_id
from protocols.post_records import CommentDraft
from protocols.posts import Comment, CommentCreate, LikeState
from protocols.users import UserSummary
from server.auth.principal import Principal
from server.http.cursors import TimeIdKey, decode_cursor, encode_cursor
from server.posts.access import after_id, next_cursor, not_found, original
from server.posts.mentions import mentioned_names
from server.posts.ports import CommentStore, LikeStore, PostStore


class EngagementService:
    def __init__(self, *, posts: PostStore, likes: LikeStore, comments: CommentStore) -> None:
        self._posts = posts
        self._likes = likes
        self._comments = comments

    async def like(self, caller: Principal, raw_id: str) -> LikeState:
        """Idempotent: liking twice leaves one like."""
        target = await original(self._posts, raw_id, caller.user_id)
        result = await self._likes.like(target.id, caller.user_id)
        if result.outcome == "not_found":
            raise not_found(raw_id)
        return LikeState(liked=True, like_count=result.like_count)

    async def unlike(self, caller: Principal, raw_id: str) -> LikeState:
        """Idempotent: unliking a post not liked changes nothing."""
        target = await original(self._posts, raw_id, caller.user_id)
        result = await self._likes.unlike(target.id, caller.user_id)
        if result.outcome == "not_found":
            raise not_found(raw_id)
        return LikeState(liked=False, like_count=result.like_count)

    async def likers(self, caller: Principal, raw_id: str,
                     query: PageQuery) -> Page[UserSummary]:
        """Who liked the post, newest like first."""
        after = decode_cursor(query.cursor, TimeIdKey) if query.cursor else None
        target = await original(self._posts, raw_id, caller.user_id)
        items, last = await self._likes.likers(target.id, caller.user_id, limit=query.limit,
                                               after=after)
        return Page(items=items, next_cursor=encode_cursor(last) if last else None)

    async def comment(self, caller: Principal, raw_id: str, body: CommentCreate) -> Comment:
        target = await original(self._posts, raw_id, caller.user_id)
        comment = await self._comments.add(CommentDraft(
            comment_id=new_id(), post_id=target.id, author_id=caller.user_id, text=body.text,
            mention_names=mentioned_names(body.text)))
        if comment is None:
            raise not_found(raw_id)
        return comment

    async def comments(self, caller: Principal, raw_id: str,
                       query: PageQuery) -> Page[Comment]:
        """Comments on the post, oldest first (reading order of a conversation)."""
        after = after_id(query.cursor)
        target = await original(self._posts, raw_id, caller.user_id)
        found = await self._comments.page(target.id, caller.user_id, limit=query.limit + 1,
                                          after=after)
        return Page(items=found[:query.limit],
                    next_cursor=next_cursor([c.id for c in found], query.limit))
