"""Postgres adapter of server.users.ports.ProfileStore: profiles as a viewer sees them."""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec

from protocols.roles import Role
from protocols.users import Me, ProfilePatch, UserProfile
from storage.postgres.user_rows import (
    USER_COLUMNS,
    me_from_row,
    prefixed_user_columns,
    profile_from_row,
)

# The user row plus the viewer's relation to it. $1 is the viewer (NULL: nobody, so every
# EXISTS is false and nothing is hidden).
_PROFILE_SELECT = f"""
SELECT {prefixed_user_columns("u")},
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = u.id)
           AS followed_by_me,
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = u.id AND f.followee_id = $1)
           AS follows_me,
       EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = u.id)
           AS blocked_by_me,
       EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.id AND b.blocked_id = $1)
           AS blocks_me,
       EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = $1 AND m.muted_id = u.id)
           AS muted_by_me
FROM users u
"""
_PROFILE_BY_ID = _PROFILE_SELECT + "WHERE u.id = $2"
_PROFILE_BY_USERNAME = _PROFILE_SELECT + "WHERE lower(u.username) = lower($2)"

# One static statement for every combination of fields: $2/$4/$6 say whether to set the
# field, so absent fields keep their value and an explicit NULL avatar clears it.
_UPDATE_PROFILE = f"""
UPDATE users SET
    display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
    bio = CASE WHEN $4 THEN $5 ELSE bio END,
    avatar_media_id = CASE WHEN $6 THEN $7::uuid ELSE avatar_media_id END,
    updated_at = now()
WHERE id = $1
RETURNING {USER_COLUMNS}
"""


class PostgresProfileStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def id_by_username(self, username: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT id FROM users WHERE lower(username) = lower($1)", username)

    async def exists(self, user_id: str) -> bool:
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id))

    async def profile_by_id(self, viewer_id: str | None, user_id: str) -> UserProfile | None:
        return _visible(await self._pool.fetchrow(_PROFILE_BY_ID, viewer_id, user_id))

    async def profile_by_username(self, viewer_id: str | None,
                                  username: str) -> UserProfile | None:
        return _visible(await self._pool.fetchrow(_PROFILE_BY_USERNAME, viewer_id, username))

    async def owns_ready_image(self, user_id: str, media_id: str) -> bool:
        return bool(await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM media WHERE id = $1::uuid AND owner_id = $2 "
            "AND status = 'ready')", media_id, user_id))

    async def update_profile(self, user_id: str, patch: ProfilePatch) -> Me | None:
        row = await self._pool.fetchrow(
            _UPDATE_PROFILE, user_id,
            *_set(patch.display_name), *_set(patch.bio), *_set(patch.avatar_media_id),
        )
        return me_from_row(row) if row is not None else None

    async def set_role(self, user_id: str,
                       role: Role) -> Literal["changed", "missing", "last_admin"]:
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock every admin row: a concurrent demotion waits here, then re-reads the set
            # without the admin it just lost, so two demotions can never both pass the check.
            admins = {r["id"] for r in await conn.fetch(
                "SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE")}
            if role != "admin" and admins == {user_id}:
                return "last_admin"
            updated = await conn.fetchval(
                "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING id",
                user_id, role)
            return "changed" if updated is not None else "missing"


def _set(value: object) -> tuple[bool, object]:
    """(whether to write, the value) for one CASE pair of _UPDATE_PROFILE."""
    return (False, None) if value is msgspec.UNSET else (True, value)


def _visible(row: asyncpg.Record | None) -> UserProfile | None:
    if row is None or row["blocked_by_me"] or row["blocks_me"]:
        return None
    return profile_from_row(row, followed_by_me=row["followed_by_me"],
                            follows_me=row["follows_me"], muted_by_me=row["muted_by_me"])
