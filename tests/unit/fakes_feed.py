"""In-memory twins of the feed's ports (FeedSource, FollowerSource, PostHydrator) over one
small world of users, posts, follows, blocks and mutes. Post ids count up, so id order is
creation order exactly (real UUIDv7s only order by millisecond)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from protocols.posts import Post
from protocols.users import UserSummary

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class FakePost:
    id: str
    author_id: str
    reply_to_id: str | None = None
    repost_of_id: str | None = None
    deleted: bool = False


@dataclass
class FeedWorld:
    users: set[str] = field(default_factory=set)
    posts: dict[str, FakePost] = field(default_factory=dict)
    follows: set[tuple[str, str]] = field(default_factory=set)  # (follower, followee)
    blocks: set[tuple[str, str]] = field(default_factory=set)  # (blocker, blocked)
    mutes: set[tuple[str, str]] = field(default_factory=set)  # (muter, muted)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> str:
        return f"{next(self._ids):08x}-0000-7000-8000-000000000000"

    def user(self) -> str:
        user_id = f"ffffffff-0000-7000-8000-{len(self.users) + 1:012x}"
        self.users.add(user_id)
        return user_id

    def post(self, author_id: str, *, reply_to_id: str | None = None,
             repost_of_id: str | None = None) -> str:
        post_id = self.next_id()
        self.posts[post_id] = FakePost(post_id, author_id, reply_to_id, repost_of_id)
        return post_id

    def follow(self, follower: str, *followees: str) -> None:
        self.follows |= {(follower, f) for f in followees}

    def follower_count(self, user_id: str) -> int:
        return sum(1 for _, followee in self.follows if followee == user_id)

    def followees(self, user_id: str) -> set[str]:
        return {b for a, b in self.follows if a == user_id}

    def hidden(self, viewer: str, other: str) -> bool:
        return (viewer, other) in self.blocks or (other, viewer) in self.blocks

    def live(self) -> list[FakePost]:
        return sorted((p for p in self.posts.values() if not p.deleted),
                      key=lambda p: p.id, reverse=True)


class FakeFeedSource:
    """FeedSource and FollowerSource over a FeedWorld; counts calls for assertions."""

    def __init__(self, world: FeedWorld) -> None:
        self.world = world
        self.popular_ids: list[str] = []
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _list(self, user_id: str, authors: set[str], before: str | None,
              limit: int) -> list[str]:
        return [p.id for p in self.world.live()
                if (p.author_id == user_id or (p.author_id in authors
                                               and p.reply_to_id is None))
                and (before is None or p.id < before)][:limit]

    async def timeline_seed(self, user_id: str, limit: int, push_threshold: int) -> list[str]:
        self._count("timeline_seed")
        small = {f for f in self.world.followees(user_id)
                 if self.world.follower_count(f) < push_threshold}
        return self._list(user_id, small, None, limit)

    async def pulled(self, user_id: str, before_id: str | None, limit: int,
                     push_threshold: int) -> list[str]:
        self._count("pulled")
        big = {f for f in self.world.followees(user_id)
               if self.world.follower_count(f) >= push_threshold}
        return [i for i in self._list(user_id, big, before_id, limit * 10)
                if self.world.posts[i].author_id != user_id][:limit]

    async def home(self, user_id: str, before_id: str | None, limit: int) -> list[str]:
        self._count("home")
        return self._list(user_id, self.world.followees(user_id), before_id, limit)

    async def relations(self, viewer_id: str,
                        author_ids: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
        self._count("relations")
        following = frozenset(a for a in author_ids if (viewer_id, a) in self.world.follows)
        hidden = frozenset(a for a in author_ids if self.world.hidden(viewer_id, a)
                           or (viewer_id, a) in self.world.mutes)
        return following, hidden

    async def popular(self, window_hours: int, limit: int) -> list[str]:
        self._count("popular")
        return self.popular_ids[:limit]

    async def follower_count(self, user_id: str) -> int | None:
        return self.world.follower_count(user_id) if user_id in self.world.users else None

    async def followers(self, user_id: str, batch: int) -> AsyncIterator[list[str]]:
        self._count("followers")
        ids = sorted(a for a, b in self.world.follows if b == user_id)
        for start in range(0, len(ids), batch):
            self._count("followers_batch")
            yield ids[start:start + batch]

    async def recent_posts(self, author_id: str, limit: int) -> list[str]:
        return [p.id for p in self.world.live()
                if p.author_id == author_id and p.reply_to_id is None][:limit]


class FakeHydrator:
    """PostReader's rules: deleted and block-hidden posts (and reposts of them) dropped;
    muted ones too with exclude_muted."""

    def __init__(self, world: FeedWorld) -> None:
        self.world = world

    def _shown(self, post_id: str, viewer: str | None, exclude_muted: bool) -> bool:
        post = self.world.posts.get(post_id)
        if post is None or post.deleted:
            return False
        if viewer is not None and (self.world.hidden(viewer, post.author_id) or (
                exclude_muted and (viewer, post.author_id) in self.world.mutes)):
            return False
        return post.repost_of_id is None or self._shown(post.repost_of_id, viewer,
                                                        exclude_muted)

    def _build(self, post_id: str) -> Post:
        post = self.world.posts[post_id]
        author = UserSummary(id=post.author_id, username=f"u{post.author_id[-4:]}",
                             display_name="")
        return Post(id=post.id, author=author, text="t", media=[],
                    created_at=_EPOCH + timedelta(seconds=int(post.id[:8], 16)),
                    reply_to_id=post.reply_to_id, quote_of=None,
                    repost_of=self._build(post.repost_of_id) if post.repost_of_id else None,
                    like_count=0, comment_count=0, repost_count=0, liked_by_me=False,
                    reposted_by_me=False)

    async def get_many(self, post_ids: Sequence[str], viewer_id: str | None, *,
                       exclude_muted: bool = False) -> list[Post]:
        return [self._build(i) for i in dict.fromkeys(post_ids)
                if self._shown(i, viewer_id, exclude_muted)]
