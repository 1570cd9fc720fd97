"""The rules of accounts and the social graph, over the ProfileStore and GraphStore ports.

A user reference is what a `{id}` path segment holds: a user id, `@username`, or `me` (the
caller). Anything else, and any user the caller may not see, is a 404: the contract answers
404 for things the caller may not see, so a block never shows as a different status than a
missing account.
"""

from __future__ import annotations

from protocols.common import Page, PageQuery
from protocols.ids import is_id
from protocols.problems import FieldError
from protocols.roles import Role
from protocols.users import Me, ProfilePatch, Relationship, UserProfile, UserSummary
from server.auth.principal import Principal
from server.http.cursors import TimeIdKey, decode_cursor, encode_cursor
from server.http.problems import Conflict, NotFound, ValidationFailed
from server.users.ports import GraphStore, PageKey, ProfileStore

ME = "me"
# Longer than any username can be; such a lookup cannot match, so skip the query.
_MAX_USERNAME = 64


class UserService:
    def __init__(self, profiles: ProfileStore, graph: GraphStore) -> None:
        self._profiles = profiles
        self._graph = graph

    # Profiles

    async def profile(self, caller: Principal, ref: str) -> UserProfile:
        """The profile `ref` names as the caller sees it; 404 when missing or hidden."""
        if ref == ME:
            found = await self._profiles.profile_by_id(caller.user_id, caller.user_id)
        elif (username := _username(ref)) is not None:
            found = await self._profiles.profile_by_username(caller.user_id, username)
        elif is_id(ref):
            found = await self._profiles.profile_by_id(caller.user_id, ref.lower())
        else:
            found = None
        if found is None:
            raise _not_found(ref)
        return found

    async def update_me(self, caller: Principal, patch: ProfilePatch) -> Me:
        """422 `invalid_media` for an avatar that is not one of the caller's ready images
        (someone else's media, a pending upload, or no media at all look the same)."""
        avatar = patch.avatar_media_id
        if isinstance(avatar, str) and not await self._profiles.owns_ready_image(
                caller.user_id, avatar.lower()):
            message = "must be the id of an image you uploaded (POST /v1/media) that is ready"
            raise ValidationFailed("The avatar must be one of your ready images",
                                   code="invalid_media",
                                   errors=[FieldError(field="avatar_media_id", message=message)])
        me = await self._profiles.update_profile(caller.user_id, patch)
        if me is None:
            raise NotFound("Your account no longer exists", code="user_not_found")
        return me

    async def set_role(self, caller: Principal, ref: str, role: Role) -> UserProfile:
        """Admin only (the route enforces the role). Blocks do not hide users from it."""
        target = await self._resolve(caller, ref)
        outcome = await self._profiles.set_role(target, role)
        if outcome == "last_admin":
            raise Conflict("That would leave no admin; promote another admin first",
                           code="last_admin")
        profile = await self._profiles.profile_by_id(None, target)
        if outcome == "missing" or profile is None:
            raise _not_found(ref)
        return profile

    # Graph

    async def follow(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "follow")
        outcome = await self._graph.follow(caller.user_id, target)
        if outcome == "blocking":
            raise Conflict("You block this user; unblock them first", code="blocked")
        if outcome in ("blocked_by", "missing"):
            raise _not_found(ref)
        return await self._graph.relationship(caller.user_id, target)

    async def unfollow(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "unfollow")
        await self._graph.unfollow(caller.user_id, target)
        return await self._graph.relationship(caller.user_id, target)

    async def block(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "block")
        if await self._graph.block(caller.user_id, target) is None:
            raise _not_found(ref)
        return await self._graph.relationship(caller.user_id, target)

    async def unblock(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "unblock")
        await self._graph.unblock(caller.user_id, target)
        return await self._graph.relationship(caller.user_id, target)

    async def mute(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "mute")
        await self._graph.mute(caller.user_id, target)
        return await self._graph.relationship(caller.user_id, target)

    async def unmute(self, caller: Principal, ref: str) -> Relationship:
        target = await self._other(caller, ref, "unmute")
        await self._graph.unmute(caller.user_id, target)
        return await self._graph.relationship(caller.user_id, target)

    async def followers(self, caller: Principal, ref: str,
                        query: PageQuery) -> Page[UserSummary]:
        owner, after = await self._list_start(caller, ref, query)
        items, last = await self._graph.followers(owner, caller.user_id, limit=query.limit,
                                                  after=after)
        return Page(items=items, next_cursor=encode_cursor(last) if last else None)

    async def following(self, caller: Principal, ref: str,
                        query: PageQuery) -> Page[UserSummary]:
        owner, after = await self._list_start(caller, ref, query)
        items, last = await self._graph.following(owner, caller.user_id, limit=query.limit,
                                                  after=after)
        return Page(items=items, next_cursor=encode_cursor(last) if last else None)

    # Helpers

    async def _resolve(self, caller: Principal, ref: str) -> str:
        """The id of the existing user `ref` names, ignoring blocks; 404 when none."""
        if ref == ME:
            return caller.user_id
        found: str | None = None
        if (username := _username(ref)) is not None:
            found = await self._profiles.id_by_username(username)
        elif is_id(ref) and await self._profiles.exists(ref.lower()):
            found = ref.lower()
        if found is None:
            raise _not_found(ref)
        return found

    async def _other(self, caller: Principal, ref: str, action: str) -> str:
        target = await self._resolve(caller, ref)
        if target == caller.user_id:
            raise ValidationFailed(f"You cannot {action} yourself", code="self_action")
        return target

    async def _list_start(self, caller: Principal, ref: str,
                          query: PageQuery) -> tuple[str, PageKey | None]:
        # Decode the cursor first: a tampered cursor is a 400 whoever the list belongs to.
        after = decode_cursor(query.cursor, TimeIdKey) if query.cursor else None
        owner = await self._resolve(caller, ref)
        if owner != caller.user_id and await self._graph.is_blocked_either_way(
                caller.user_id, owner):
            raise _not_found(ref)
        return owner, after


def _username(ref: str) -> str | None:
    """The username in an `@username` reference, or None when ref cannot name anyone (that
    includes control characters: Postgres refuses a NUL in text, which would be a 500)."""
    name = ref[1:]
    if ref.startswith("@") and 0 < len(name) <= _MAX_USERNAME and name.isprintable():
        return name
    return None


def _not_found(ref: str) -> NotFound:
    return NotFound(f"No user {ref!r}", code="user_not_found")
