"""SQL pieces every post adapter shares: visibility predicates, the post-row lock, mentions.

Lock order, so post transactions can never deadlock: a transaction locks existing post rows
it changes (FOR NO KEY UPDATE) in id order, oldest first, before touching rows that point at
them (likes, comments, a repost or reply row). UUIDv7 ids make "oldest first" "id order".
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


def hidden(viewer: str, author: str) -> str:
    """A predicate: a block exists between viewer and author, either way (false when the
    viewer is NULL)."""
    return (f"(EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = {viewer}"
            f" AND b.blocked_id = {author})"
            f" OR EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = {author}"
            f" AND b.blocked_id = {viewer}))")


def muted(viewer: str, author: str) -> str:
    """A predicate: the viewer mutes the author (false when the viewer is NULL)."""
    return f"EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = {viewer} AND m.muted_id = {author})"


# Lock live posts $1 (uuid[]) in id order; each row says whether it is hidden from $2.
_LOCK_LIVE = f"""
SELECT p.id, p.author_id, {hidden("$2::uuid", "p.author_id")} AS hidden
FROM posts p
WHERE p.id = ANY($1::uuid[]) AND p.deleted_at IS NULL
ORDER BY p.id
FOR NO KEY UPDATE OF p
"""


async def lock_live_posts(conn: asyncpg.Connection, post_ids: Sequence[str],
                          viewer_id: str) -> dict[str, str]:
    """Lock the live posts among post_ids (id order) and return {id: author_id} for those not
    hidden from viewer_id. A post deleted by a transaction that committed while we waited is
    re-checked and left out."""
    rows = await conn.fetch(_LOCK_LIVE, list(post_ids), viewer_id)
    return {row["id"]: row["author_id"] for row in rows if not row["hidden"]}


_MENTIONS = f"""
SELECT u.id FROM users u
WHERE lower(u.username) = ANY($2::text[]) AND u.id <> $1 AND NOT {hidden("$1", "u.id")}
ORDER BY array_position($2::text[], lower(u.username))
"""


async def resolve_mentions(conn: asyncpg.Connection, author_id: str,
                           names: Sequence[str]) -> list[str]:
    """Ids of the users named (lowercased usernames), in the order named, leaving out unknown
    names, the author, and users with a block either way with the author."""
    if not names:
        return []
    return [row["id"] for row in await conn.fetch(_MENTIONS, author_id, list(names))]
