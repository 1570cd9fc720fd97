"""In-memory twins of server.users.ports: ProfileStore and GraphStore over one shared World."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from protocols.ids import new_id
from protocols.roles import Role
from protocols.users import Me, ProfilePatch, Relationship, UserProfile, UserSummary
from server.users.ports import FollowOutcome, PageKey, RoleOutcome

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class World:
    users: dict[str, Me] = field(default_factory=dict)
    follows: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (from, to)
    blocks: set[tuple[str, str]] = field(default_factory=set)  # (blocker, blocked)
    mutes: set[tuple[str, str]] = field(default_factory=set)  # (muter, muted)
    media: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (owner, status)
    # A fake clock: each write is one second after the previous one, unless a test pins it.
    _ticks: itertools.count[int] = field(default_factory=itertools.count)

    def now(self) -> datetime:
        return _EPOCH + timedelta(seconds=next(self._ticks))

    def add_user(self, username: str, role: Role = "user") -> str:
        user_id = new_id()
        now = self.now()
        self.users[user_id] = Me(
            id=user_id, username=username, email=f"{username}@example.test",
            display_name=username.title(), bio="", avatar_media_id=None, role=role,
            follower_count=0, following_count=0, created_at=now, updated_at=now)
        return user_id

    def add_media(self, owner_id: str, status: str = "ready") -> str:
        media_id = new_id()
        self.media[media_id] = (owner_id, status)
        return media_id

    def hidden(self, a: str | None, b: str) -> bool:
        return a is not None and ((a, b) in self.blocks or (b, a) in self.blocks)

    def count(self, user_id: str, **delta: int) -> None:
        user = self.users[user_id]
        self.users[user_id] = msgspec.structs.replace(
            user, follower_count=user.follower_count + delta.get("followers", 0),
            following_count=user.following_count + delta.get("following", 0))


class MemoryProfileStore:
    def __init__(self, world: World) -> None:
        self.world = world

    async def id_by_username(self, username: str) -> str | None:
        return next((u.id for u in self.world.users.values()
                     if u.username.lower() == username.lower()), None)

    async def exists(self, user_id: str) -> bool:
        return user_id in self.world.users

    async def profile_by_id(self, viewer_id: str | None, user_id: str) -> UserProfile | None:
        user = self.world.users.get(user_id)
        if user is None or self.world.hidden(viewer_id, user_id):
            return None
        w = self.world
        return UserProfile(
            id=user.id, username=user.username, display_name=user.display_name, bio=user.bio,
            avatar_media_id=user.avatar_media_id, role=user.role,
            follower_count=user.follower_count, following_count=user.following_count,
            created_at=user.created_at,
            followed_by_me=(viewer_id, user_id) in w.follows,
            follows_me=(user_id, viewer_id) in w.follows,
            blocked_by_me=(viewer_id, user_id) in w.blocks,
            muted_by_me=(viewer_id, user_id) in w.mutes)

    async def profile_by_username(self, viewer_id: str | None,
                                  username: str) -> UserProfile | None:
        user_id = await self.id_by_username(username)
        return await self.profile_by_id(viewer_id, user_id) if user_id else None

    async def owns_ready_image(self, user_id: str, media_id: str) -> bool:
        return self.world.media.get(media_id) == (user_id, "ready")

    async def update_profile(self, user_id: str, patch: ProfilePatch) -> Me | None:
        user = self.world.users.get(user_id)
        if user is None:
            return None
        changes = {name: getattr(patch, name) for name in patch.__struct_fields__
                   if getattr(patch, name) is not msgspec.UNSET}
        user = msgspec.structs.replace(user, updated_at=self.world.now(), **changes)
        self.world.users[user_id] = user
        return user

    async def set_role(self, user_id: str, role: Role) -> RoleOutcome:
        admins = {u.id for u in self.world.users.values() if u.role == "admin"}
        if role != "admin" and admins == {user_id}:
            return "last_admin"
        if user_id not in self.world.users:
            return "missing"
        self.world.users[user_id] = msgspec.structs.replace(self.world.users[user_id],
                                                            role=role)
        return "changed"


class MemoryGraphStore:
    def __init__(self, world: World) -> None:
        self.world = world

    async def follow(self, follower_id: str, followee_id: str) -> FollowOutcome:
        w = self.world
        if follower_id not in w.users or followee_id not in w.users:
            return "missing"
        if (follower_id, followee_id) in w.blocks:
            return "blocking"
        if (followee_id, follower_id) in w.blocks:
            return "blocked_by"
        if (follower_id, followee_id) in w.follows:
            return "unchanged"
        w.follows[follower_id, followee_id] = w.now()
        w.count(follower_id, following=1)
        w.count(followee_id, followers=1)
        return "created"

    async def unfollow(self, follower_id: str, followee_id: str) -> bool:
        if self.world.follows.pop((follower_id, followee_id), None) is None:
            return False
        self.world.count(follower_id, following=-1)
        self.world.count(followee_id, followers=-1)
        return True

    async def block(self, blocker_id: str, blocked_id: str) -> bool | None:
        w = self.world
        if blocker_id not in w.users or blocked_id not in w.users:
            return None
        created = (blocker_id, blocked_id) not in w.blocks
        w.blocks.add((blocker_id, blocked_id))
        await self.unfollow(blocker_id, blocked_id)
        await self.unfollow(blocked_id, blocker_id)
        return created

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        return _discard(self.world.blocks, (blocker_id, blocked_id))

    async def mute(self, muter_id: str, muted_id: str) -> bool:
        created = (muter_id, muted_id) not in self.world.mutes
        self.world.mutes.add((muter_id, muted_id))
        return created

    async def unmute(self, muter_id: str, muted_id: str) -> bool:
        return _discard(self.world.mutes, (muter_id, muted_id))

    async def relationship(self, viewer_id: str, other_id: str) -> Relationship:
        w = self.world
        return Relationship(user_id=other_id, following=(viewer_id, other_id) in w.follows,
                            followed_by=(other_id, viewer_id) in w.follows,
                            blocking=(viewer_id, other_id) in w.blocks,
                            muting=(viewer_id, other_id) in w.mutes)

    async def is_blocked_either_way(self, a: str, b: str) -> bool:
        return self.world.hidden(a, b)

    async def followers(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        edges = [(at, src) for (src, dst), at in self.world.follows.items() if dst == user_id]
        return self._page(edges, viewer_id, limit, after)

    async def following(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        edges = [(at, dst) for (src, dst), at in self.world.follows.items() if src == user_id]
        return self._page(edges, viewer_id, limit, after)

    def _page(self, edges: list[PageKey], viewer_id: str, limit: int,
              after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        keys = sorted((k for k in edges if not self.world.hidden(viewer_id, k[1])),
                      reverse=True)
        if after is not None:
            keys = [k for k in keys if k < after]
        shown = keys[:limit]
        items = [UserSummary(id=u.id, username=u.username, display_name=u.display_name)
                 for u in (self.world.users[k[1]] for k in shown)]
        return items, (shown[-1] if len(keys) > limit else None)


def _discard(rows: set[tuple[str, str]], row: tuple[str, str]) -> bool:
    present = row in rows
    rows.discard(row)
    return present
