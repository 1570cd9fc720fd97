"""User shapes: the public profile, the caller's own account, and the short author summary."""

from __future__ import annotations

from datetime import datetime

from protocols.base import Outbound
from protocols.roles import Role


class UserSummary(Outbound):
    """How a user appears inside other objects (a post's author, a follower list entry)."""

    id: str
    username: str
    display_name: str


class UserProfile(Outbound):
    """`GET /v1/users/{id}`: what anyone who may see the user sees. The flags are relative to
    the caller (all false when the caller is the user)."""

    id: str
    username: str
    display_name: str
    bio: str
    avatar_media_id: str | None
    role: Role
    follower_count: int
    following_count: int
    created_at: datetime
    followed_by_me: bool = False
    follows_me: bool = False
    blocked_by_me: bool = False
    muted_by_me: bool = False


class Me(Outbound):
    """The caller's own account (`GET /v1/auth/me`, `PATCH /v1/users/me`, auth responses)."""

    id: str
    username: str
    email: str
    display_name: str
    bio: str
    avatar_media_id: str | None
    role: Role
    follower_count: int
    following_count: int
    created_at: datetime
    updated_at: datetime
