"""User shapes: the public profile, the caller's own account, and the short author summary."""

from __future__ import annotations

from datetime import datetime

import msgspec

from protocols.base import Inbound, Outbound
from protocols.fields import EntityId, line, text
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


# A canonical UUID string, any case; avatar and other media ids have this shape.
MediaId = EntityId
# A name is one line; a bio may have line breaks. Neither may hold what Postgres cannot store.
DisplayName = line(max_length=50)
Bio = text(max_length=300)


class ProfilePatch(Inbound):
    """`PATCH /v1/users/me`. Absent fields are left alone; `avatar_media_id: null` clears the
    avatar, otherwise it must be one of the caller's ready images (else 422 `invalid_media`).
    At least one field must be present."""

    display_name: DisplayName | msgspec.UnsetType = msgspec.UNSET
    bio: Bio | msgspec.UnsetType = msgspec.UNSET
    avatar_media_id: MediaId | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        # msgspec reports a ValueError raised here as a validation error (a 422).
        if all(getattr(self, name) is msgspec.UNSET for name in self.__struct_fields__):
            raise ValueError(
                f"Send at least one of: {', '.join(self.__struct_fields__)}")


class Relationship(Outbound):
    """The caller's relation to another user, returned by follow/block/mute and their undos."""

    user_id: str
    following: bool  # the caller follows user_id
    followed_by: bool  # user_id follows the caller
    blocking: bool  # the caller blocks user_id
    muting: bool  # the caller mutes user_id


class RoleChange(Inbound):
    """`PUT /v1/admin/users/{id}/role`."""

    role: Role
