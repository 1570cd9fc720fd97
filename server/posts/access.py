"""What a caller may reach: post ids from paths, a post's original, users by reference, and
the keyset cursors of post lists."""

from __future__ import annotations

from typing import Protocol

from protocols.ids import is_id
from protocols.post_records import PostRef
from protocols.users import UserProfile
from server.auth.principal import Principal
from server.http.cursors import CursorId, decode_cursor, encode_cursor
from server.http.problems import NotFound
from server.posts.ports import PostStore

# An id-ordered list resumes strictly past the id of the last item shown.
IdKey = tuple[CursorId]


class UserLookup(Protocol):
    async def profile(self, caller: Principal, ref: str) -> UserProfile:
        """The user `ref` names (an id, @username or `me`) as the caller sees them; raises
        NotFound when there is none or a block exists between the two either way.
        (server.users.service.UserService)"""
        ...


def post_id(raw: str) -> str:
    """The canonical id in a `{id}` path segment; 404 when it cannot name a post."""
    if not is_id(raw):
        raise not_found(raw)
    return raw.lower()


def not_found(raw: str) -> NotFound:
    return NotFound(f"No post {raw!r}", code="post_not_found")


def visible(ref: PostRef | None) -> bool:
    return ref is not None and not ref.deleted and not ref.hidden


async def original(posts: PostStore, raw: str, viewer_id: str) -> PostRef:
    """The live post `raw` names as the viewer may see it, or, when it is a repost, the
    original it reposts (likes, comments, reposts and replies of a repost go to the
    original). 404 when either is missing, deleted or hidden from the viewer."""
    ref = await posts.ref(post_id(raw), viewer_id)
    if ref is not None and visible(ref) and ref.repost_of_id is not None:
        ref = await posts.ref(ref.repost_of_id, viewer_id)
    if ref is None or not visible(ref):
        raise not_found(raw)
    return ref


def after_id(cursor: str | None) -> str | None:
    """The id a page resumes past; BadRequest `invalid_cursor` for a cursor not ours."""
    return decode_cursor(cursor, IdKey)[0] if cursor else None


def next_cursor(ids: list[str], limit: int) -> str | None:
    """Given up to limit + 1 ids, the cursor past the limit-th, or None when none follow."""
    return encode_cursor((ids[limit - 1],)) if len(ids) > limit else None
