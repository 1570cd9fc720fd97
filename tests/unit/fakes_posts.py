"""In-memory twins of server.posts.ports over the users fakes' World: posts, likes, comments,
views, and the events each change would put in the outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocols.events import (
    CommentCreated,
    EventData,
    PostCreated,
    PostDeleted,
    PostLiked,
    PostReposted,
    PostUnliked,
)
from protocols.ids import new_id
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
from server.posts.ports import LikeKey
from tests.unit.fakes_users import World

DAY = timedelta(hours=24)


@dataclass
class StoredPost:
    id: str
    author_id: str
    text: str
    created_at: datetime
    reply_to_id: str | None = None
    quote_of_id: str | None = None
    repost_of_id: str | None = None
    media_ids: list[str] = field(default_factory=list)
    like_count: int = 0
    comment_count: int = 0
    repost_count: int = 0
    quote_count: int = 0
    reply_count: int = 0
    view_count: int = 0
    deleted: bool = False


@dataclass
class PostWorld:
    users: World
    posts: dict[str, StoredPost] = field(default_factory=dict)
    likes: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (post, user)
    comments: dict[str, Comment] = field(default_factory=dict)
    comment_deleted: set[str] = field(default_factory=set)
    events: list[EventData] = field(default_factory=list)
    media_owner: dict[str, str] = field(default_factory=dict)  # media id -> owner id
    claimed_media: dict[str, str] = field(default_factory=dict)  # media id -> post id

    def hidden(self, viewer: str | None, author: str) -> bool:
        return self.users.hidden(viewer, author)

    def muted(self, viewer: str | None, author: str) -> bool:
        return viewer is not None and (viewer, author) in self.users.mutes

    def live(self, post_id: str | None, viewer: str) -> StoredPost | None:
        post = self.posts.get(post_id) if post_id is not None else None
        if post is None or post.deleted or self.hidden(viewer, post.author_id):
            return None
        return post

    def mentions(self, author: str, names: Sequence[str]) -> list[str]:
        by_name = {u.username.lower(): u.id for u in self.users.users.values()}
        found = [by_name[n] for n in names if n in by_name]
        return [u for u in found if u != author and not self.hidden(author, u)]

    def summary(self, user_id: str) -> UserSummary:
        user = self.users.users[user_id]
        return UserSummary(id=user.id, username=user.username, display_name=user.display_name)


class MemoryPostStore:
    def __init__(self, world: PostWorld) -> None:
        self.world = world

    async def ref(self, post_id: str, viewer_id: str | None, *,
                  tx: object = None) -> PostRef | None:
        post = self.world.posts.get(post_id)
        if post is None:
            return None
        return PostRef(id=post.id, author_id=post.author_id, repost_of_id=post.repost_of_id,
                       deleted=post.deleted, hidden=self.world.hidden(viewer_id, post.author_id))

    async def create(self, draft: PostDraft, *, daily_limit: int,
                     tx: object = None) -> CreateResult:
        w = self.world
        now = w.users.now()
        recent = sorted((p.created_at for p in w.posts.values()
                         if p.author_id == draft.author_id and p.repost_of_id is None
                         and p.created_at > now - DAY), reverse=True)
        if len(recent) >= daily_limit:
            edge = recent[daily_limit - 1]
            return CreateResult(outcome="daily_limit",
                                retry_after=max((edge + DAY - now).total_seconds(), 1.0))
        reply = w.live(draft.reply_to_id, draft.author_id)
        if draft.reply_to_id is not None and reply is None:
            return CreateResult(outcome="reply_not_found")
        quote = w.live(draft.quote_of_id, draft.author_id)
        if draft.quote_of_id is not None and quote is None:
            return CreateResult(outcome="quote_not_found")
        for media_id in draft.media_ids:
            if w.media_owner.get(media_id) != draft.author_id or media_id in w.claimed_media:
                raise ValueError(f"media {media_id} cannot be claimed")
        w.claimed_media.update(dict.fromkeys(draft.media_ids, draft.post_id))
        w.posts[draft.post_id] = StoredPost(
            id=draft.post_id, author_id=draft.author_id, text=draft.text, created_at=now,
            reply_to_id=draft.reply_to_id, quote_of_id=draft.quote_of_id,
            media_ids=list(draft.media_ids))
        if reply is not None:
            reply.reply_count += 1
        if quote is not None:
            quote.quote_count += 1
        w.events.append(PostCreated(
            post_id=draft.post_id, author_id=draft.author_id, created_at=now,
            reply_to_id=draft.reply_to_id,
            reply_to_author_id=reply.author_id if reply else None,
            quote_of_id=draft.quote_of_id, quote_of_author_id=quote.author_id if quote else None,
            mentioned_user_ids=w.mentions(draft.author_id, draft.mention_names),
            has_media=bool(draft.media_ids)))
        return CreateResult(outcome="created")

    async def delete(self, post_id: str, deleted_by: str) -> bool:
        post = self.world.posts.get(post_id)
        if post is None or post.deleted:
            return False
        post.deleted = True
        for parent, counter in ((post.reply_to_id, "reply_count"),
                                (post.quote_of_id, "quote_count"),
                                (post.repost_of_id, "repost_count")):
            if parent is not None:
                target = self.world.posts[parent]
                setattr(target, counter, getattr(target, counter) - 1)
        self.world.events.append(PostDeleted(post_id=post_id, author_id=post.author_id,
                                             deleted_by=deleted_by))
        return True

    def _live_repost(self, original_id: str, user_id: str) -> StoredPost | None:
        return next((p for p in self.world.posts.values()
                     if p.author_id == user_id and p.repost_of_id == original_id
                     and not p.deleted), None)

    async def repost(self, original_id: str, user_id: str) -> RepostResult:
        original = self.world.live(original_id, user_id)
        if original is None:
            return RepostResult(outcome="not_found")
        if (existing := self._live_repost(original_id, user_id)) is not None:
            return RepostResult(outcome="existing", repost_id=existing.id)
        now = self.world.users.now()
        repost = StoredPost(id=new_id(), author_id=user_id, text="", created_at=now,
                            repost_of_id=original_id)
        self.world.posts[repost.id] = repost
        original.repost_count += 1
        self.world.events.append(PostReposted(
            post_id=original_id, original_author_id=original.author_id, repost_id=repost.id,
            user_id=user_id, created_at=now))
        return RepostResult(outcome="created", repost_id=repost.id)

    async def unrepost(self, original_id: str, user_id: str) -> str | None:
        repost = self._live_repost(original_id, user_id)
        if repost is None:
            return None
        repost.deleted = True
        self.world.posts[original_id].repost_count -= 1
        self.world.events.append(PostDeleted(post_id=repost.id, author_id=user_id,
                                             deleted_by=user_id))
        return repost.id

    async def metrics(self, post_id: str) -> PostMetrics | None:
        p = self.world.posts.get(post_id)
        if p is None:
            return None
        return PostMetrics(post_id=p.id, likes=p.like_count, comments=p.comment_count,
                           reposts=p.repost_count, quotes=p.quote_count, replies=p.reply_count,
                           views=p.view_count)

    async def add_views(self, counts: Mapping[str, int]) -> None:
        for post_id, count in counts.items():
            if post_id in self.world.posts:
                self.world.posts[post_id].view_count += count


class MemoryPostRows:
    def __init__(self, world: PostWorld) -> None:
        self.world = world
        self.calls = 0

    async def rows(self, post_ids: Sequence[str], viewer_id: str | None,
                   tx: object = None) -> list[PostRow]:
        self.calls += 1
        wanted: dict[str, None] = {}
        frontier = [p for p in post_ids if p in self.world.posts]
        for _ in range(3):
            wanted.update(dict.fromkeys(frontier))
            frontier = [ref for p in frontier
                        for ref in (self.world.posts[p].repost_of_id,
                                    self.world.posts[p].quote_of_id)
                        if ref is not None and ref in self.world.posts]
        return [self._row(self.world.posts[p], viewer_id) for p in wanted]

    def _row(self, p: StoredPost, viewer: str | None) -> PostRow:
        w = self.world
        author = w.users.users[p.author_id]
        return PostRow(
            id=p.id, author_id=p.author_id, username=author.username,
            display_name=author.display_name, text=p.text, created_at=p.created_at,
            reply_to_id=p.reply_to_id, quote_of_id=p.quote_of_id, repost_of_id=p.repost_of_id,
            has_media=bool(p.media_ids), like_count=p.like_count,
            comment_count=p.comment_count, repost_count=p.repost_count,
            quote_count=p.quote_count, reply_count=p.reply_count, view_count=p.view_count,
            deleted=p.deleted, hidden=w.hidden(viewer, p.author_id),
            muted=w.muted(viewer, p.author_id),
            liked_by_me=viewer is not None and (p.id, viewer) in w.likes,
            reposted_by_me=viewer is not None
            and MemoryPostStore(w)._live_repost(p.id, viewer) is not None)


class MemoryPostIndex:
    def __init__(self, world: PostWorld) -> None:
        self.world = world

    def _visible(self, viewer: str) -> list[StoredPost]:
        return [p for p in self.world.posts.values()
                if not p.deleted and not self.world.hidden(viewer, p.author_id)]

    async def search(self, viewer_id: str, where: PostFilter, *, limit: int,
                     before: str | None) -> list[str]:
        def keep(p: StoredPost) -> bool:
            return (p.repost_of_id is None
                    and (before is None or p.id < before)
                    and (where.author_id is None or p.author_id == where.author_id)
                    and (where.author_id is not None
                         or not self.world.muted(viewer_id, p.author_id))
                    and (where.since is None or p.created_at >= where.since)
                    and (where.until is None or p.created_at < where.until)
                    and (where.has_media is None or bool(p.media_ids) == where.has_media)
                    and (where.q is None
                         or all(w in p.text.lower().split() for w in where.q.lower().split())))
        return sorted((p.id for p in self._visible(viewer_id) if keep(p)), reverse=True)[:limit]

    async def replies(self, post_id: str, viewer_id: str, *, limit: int,
                      after: str | None) -> list[str]:
        return sorted(p.id for p in self._visible(viewer_id)
                      if p.reply_to_id == post_id and (after is None or p.id > after)
                      and not self.world.muted(viewer_id, p.author_id))[:limit]

    async def by_user(self, user_id: str, viewer_id: str, *, limit: int,
                      before: str | None) -> list[str]:
        def keep(p: StoredPost) -> bool:
            return (p.author_id == user_id and (before is None or p.id < before)
                    and (p.repost_of_id is None
                         or self.world.live(p.repost_of_id, viewer_id) is not None))
        return sorted((p.id for p in self._visible(viewer_id) if keep(p)), reverse=True)[:limit]

    async def user_stats(self, user_id: str) -> UserStats | None:
        user = self.world.users.users.get(user_id)
        if user is None:
            return None
        own = [p for p in self.world.posts.values() if p.author_id == user_id and not p.deleted]
        originals = [p for p in own if p.repost_of_id is None]
        return UserStats(
            user_id=user_id, followers=user.follower_count, following=user.following_count,
            posts=len(originals), reposts=len(own) - len(originals),
            likes_received=sum(p.like_count for p in own),
            comments_received=sum(p.comment_count for p in own),
            reposts_received=sum(p.repost_count for p in own),
            likes_given=sum(1 for (post, u) in self.world.likes
                            if u == user_id and not self.world.posts[post].deleted))


class MemoryLikeStore:
    def __init__(self, world: PostWorld) -> None:
        self.world = world

    async def like(self, post_id: str, user_id: str) -> LikeResult:
        post = self.world.live(post_id, user_id)
        if post is None:
            return LikeResult(outcome="not_found")
        if (post_id, user_id) in self.world.likes:
            return LikeResult(outcome="unchanged", like_count=post.like_count)
        self.world.likes[post_id, user_id] = self.world.users.now()
        post.like_count += 1
        self.world.events.append(PostLiked(post_id=post_id, author_id=post.author_id,
                                           user_id=user_id))
        return LikeResult(outcome="changed", like_count=post.like_count)

    async def unlike(self, post_id: str, user_id: str) -> LikeResult:
        post = self.world.live(post_id, user_id)
        if post is None:
            return LikeResult(outcome="not_found")
        if self.world.likes.pop((post_id, user_id), None) is None:
            return LikeResult(outcome="unchanged", like_count=post.like_count)
        post.like_count -= 1
        self.world.events.append(PostUnliked(post_id=post_id, author_id=post.author_id,
                                             user_id=user_id))
        return LikeResult(outcome="changed", like_count=post.like_count)

    async def likers(self, post_id: str, viewer_id: str, *, limit: int,
                     after: LikeKey | None) -> tuple[list[UserSummary], LikeKey | None]:
        keys = sorted(((at, user) for (post, user), at in self.world.likes.items()
                       if post == post_id and not self.world.hidden(viewer_id, user)),
                      reverse=True)
        if after is not None:
            keys = [k for k in keys if k < after]
        shown = keys[:limit]
        more = len(keys) > limit
        return ([self.world.summary(user) for _, user in shown],
                shown[-1] if more else None)


class MemoryCommentStore:
    def __init__(self, world: PostWorld) -> None:
        self.world = world

    async def add(self, draft: CommentDraft) -> Comment | None:
        post = self.world.live(draft.post_id, draft.author_id)
        if post is None:
            return None
        comment = Comment(id=draft.comment_id, post_id=draft.post_id,
                          author=self.world.summary(draft.author_id), text=draft.text,
                          created_at=self.world.users.now())
        self.world.comments[comment.id] = comment
        post.comment_count += 1
        self.world.events.append(CommentCreated(
            comment_id=comment.id, post_id=post.id, post_author_id=post.author_id,
            author_id=draft.author_id,
            mentioned_user_ids=self.world.mentions(draft.author_id, draft.mention_names)))
        return comment

    async def page(self, post_id: str, viewer_id: str, *, limit: int,
                   after: str | None) -> list[Comment]:
        found = sorted((c for c in self.world.comments.values()
                        if c.post_id == post_id and c.id not in self.world.comment_deleted
                        and (after is None or c.id > after)
                        and not self.world.hidden(viewer_id, c.author.id)
                        and not self.world.muted(viewer_id, c.author.id)),
                       key=lambda c: c.id)
        return found[:limit]


def events_of(world: PostWorld, kind: type[EventData]) -> list[EventData]:
    return [e for e in world.events if isinstance(e, kind)]

