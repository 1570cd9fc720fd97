"""The ports the user service needs: profiles and the social graph.

Adapters live in storage/postgres (profiles.py, graph.py); tests/unit/fakes_users.py holds the
in-memory twins. Ids passed in are canonical lowercase UUID strings that the caller has already
checked the shape of; "hidden" always means a block exists between the two users, either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from protocols.roles import Role
from protocols.users import Me, ProfilePatch, Relationship, UserProfile, UserSummary

# Where a newest-first page resumes: the (created_at, user id) of the last item shown.
PageKey = tuple[datetime, str]

FollowOutcome = Literal[
    "created",  # a new follow row: counts went up by one each
    "unchanged",  # already following: nothing written
    "blocking",  # the follower blocks the followee: nothing written
    "blocked_by",  # the followee blocks the follower: nothing written
    "missing",  # either user does not exist
]
RoleOutcome = Literal["changed", "missing", "last_admin"]


class ProfileStore(Protocol):
    async def id_by_username(self, username: str) -> str | None:
        """The id of the user with this username, compared case-insensitively; None if none.
        Ignores blocks: callers decide visibility."""
        ...

    async def exists(self, user_id: str) -> bool:
        """True when a user with this id exists. Ignores blocks."""
        ...

    async def profile_by_id(self, viewer_id: str | None, user_id: str) -> UserProfile | None:
        """The profile as `viewer_id` sees it: relation flags are relative to the viewer and
        all false when the viewer is the user. None when there is no such user or a block
        exists between the two either way. `viewer_id=None` is the system's view: never
        hidden, flags all false (for admin tooling)."""
        ...

    async def profile_by_username(self, viewer_id: str | None,
                                  username: str) -> UserProfile | None:
        """As profile_by_id, finding the user by username case-insensitively."""
        ...

    async def owns_ready_image(self, user_id: str, media_id: str) -> bool:
        """True when media_id names a media item of user_id's that is ready (uploaded and
        verified as an image: every ready media item is one). A ready item stays ready and
        stays its owner's for as long as the owner exists, so a True cannot go stale."""
        ...

    async def update_profile(self, user_id: str, patch: ProfilePatch) -> Me | None:
        """Apply the fields of `patch` that are set (None clears the avatar) and bump
        updated_at, in one statement; returns the account afterwards, None if it is gone."""
        ...

    async def set_role(self, user_id: str, role: Role) -> RoleOutcome:
        """Give the user `role`. Atomically refuses ("last_admin", nothing written) when that
        would leave no admin at all, even under concurrent demotions. "missing" when there is
        no such user. Setting the role a user already has is "changed" (idempotent)."""
        ...


class GraphStore(Protocol):
    async def follow(self, follower_id: str, followee_id: str) -> FollowOutcome:
        """Make follower follow followee, idempotently. In one transaction that serialises
        with block(): refuses when a block exists either way; otherwise inserts the row and,
        only when a row was really inserted, adds one to the followee's follower_count and the
        follower's following_count, so the counts stay exact under any concurrency."""
        ...

    async def unfollow(self, follower_id: str, followee_id: str) -> bool:
        """Remove the follow if present, decrementing both counts in the same transaction
        only when a row was really deleted. True when a row was deleted."""
        ...

    async def block(self, blocker_id: str, blocked_id: str) -> bool | None:
        """In one transaction: record the block and delete follows in both directions, fixing
        the four counts by exactly the rows deleted. True when the block is new, False when it
        existed, None when either user does not exist."""
        ...

    async def unblock(self, blocker_id: str, blocked_id: str) -> bool:
        """Remove the block if present; follows removed by the block stay removed. True when
        a row was deleted."""
        ...

    async def mute(self, muter_id: str, muted_id: str) -> bool:
        """Record the mute idempotently (follows are untouched). True when it is new."""
        ...

    async def unmute(self, muter_id: str, muted_id: str) -> bool:
        """Remove the mute if present. True when a row was deleted."""
        ...

    async def relationship(self, viewer_id: str, other_id: str) -> Relationship:
        """The viewer's current relation to other (all false when there is none)."""
        ...

    async def is_blocked_either_way(self, a: str, b: str) -> bool:
        """True when a blocks b or b blocks a."""
        ...

    async def followers(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        """Who follows user_id, newest follow first (ties broken by follower id, descending),
        starting strictly after `after`. Users hidden from viewer_id by a block either way are
        left out. Returns up to `limit` users and the key to resume from, or None when this
        page is the last."""
        ...

    async def following(self, user_id: str, viewer_id: str, *, limit: int,
                        after: PageKey | None) -> tuple[list[UserSummary], PageKey | None]:
        """Whom user_id follows; otherwise exactly as followers()."""
        ...
