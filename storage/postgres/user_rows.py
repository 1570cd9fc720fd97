"""Mapping `users` rows to the user wire shapes; one place, so every query agrees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocols.users import Me, UserProfile, UserSummary

# Select these (optionally prefixed, e.g. "u.") to build any of the shapes below.
USER_COLUMNS = (
    "id, username, email, display_name, bio, avatar_media_id, role, "
    "follower_count, following_count, created_at, updated_at"
)


def prefixed_user_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in USER_COLUMNS.split(","))


def me_from_row(row: Mapping[str, Any]) -> Me:
    return Me(
        id=row["id"], username=row["username"], email=row["email"],
        display_name=row["display_name"], bio=row["bio"],
        avatar_media_id=row["avatar_media_id"], role=row["role"],
        follower_count=row["follower_count"], following_count=row["following_count"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def profile_from_row(row: Mapping[str, Any], **relation: bool) -> UserProfile:
    """relation: followed_by_me, follows_me, blocked_by_me, muted_by_me (default False)."""
    return UserProfile(
        id=row["id"], username=row["username"], display_name=row["display_name"],
        bio=row["bio"], avatar_media_id=row["avatar_media_id"], role=row["role"],
        follower_count=row["follower_count"], following_count=row["following_count"],
        created_at=row["created_at"], **relation,
    )


def summary_from_row(row: Mapping[str, Any]) -> UserSummary:
    return UserSummary(id=row["id"], username=row["username"],
                       display_name=row["display_name"])
