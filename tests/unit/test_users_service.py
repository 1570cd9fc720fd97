"""UserService rules over in-memory ports: references, self-actions, blocks and visibility."""

from __future__ import annotations

import msgspec
import pytest

from protocols.common import PageQuery
from protocols.roles import Role
from protocols.users import ProfilePatch
from server.auth.principal import Principal
from server.http.problems import BadRequest, Conflict, NotFound, ValidationFailed
from server.users.service import UserService
from tests.unit.fakes_users import MemoryGraphStore, MemoryProfileStore, World


class Scene:
    def __init__(self) -> None:
        self.world = World()
        self.service = UserService(MemoryProfileStore(self.world), MemoryGraphStore(self.world))

    def user(self, username: str, role: Role = "user") -> Principal:
        user_id = self.world.add_user(username, role)
        return Principal(user_id=user_id, role=role, token_id="t", expires_at=0)

    def counts(self, p: Principal) -> tuple[int, int]:
        user = self.world.users[p.user_id]
        return user.follower_count, user.following_count


@pytest.fixture
def scene() -> Scene:
    return Scene()


async def test_profile_by_id_username_and_me(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("Bob")
    by_id = await scene.service.profile(ann, bob.user_id)
    assert by_id.username == "Bob" and not by_id.followed_by_me
    assert await scene.service.profile(ann, "@bob") == by_id  # usernames ignore case
    assert await scene.service.profile(ann, bob.user_id.upper()) == by_id
    assert (await scene.service.profile(ann, "me")).id == ann.user_id


@pytest.mark.parametrize("ref", ["nope", "@", "@nobody", "12345", "@" + "x" * 200, "@a\x00b",
                                 "00000000-0000-7000-8000-000000000000"])
async def test_unknown_or_malformed_reference_is_404(scene: Scene, ref: str) -> None:
    ann = scene.user("ann")
    with pytest.raises(NotFound):
        await scene.service.profile(ann, ref)
    with pytest.raises(NotFound):
        await scene.service.follow(ann, ref)


async def test_update_me_sets_only_given_fields_and_null_clears_avatar(scene: Scene) -> None:
    ann = scene.user("ann")
    media = scene.world.add_media(ann.user_id)
    me = await scene.service.update_me(ann, ProfilePatch(bio="hi", avatar_media_id=media))
    assert (me.bio, me.avatar_media_id, me.display_name) == ("hi", media, "Ann")
    me = await scene.service.update_me(ann, ProfilePatch(avatar_media_id=None))
    assert (me.bio, me.avatar_media_id) == ("hi", None)


async def test_avatar_must_be_one_of_the_callers_ready_images(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    own = scene.world.add_media(ann.user_id)
    await scene.service.update_me(ann, ProfilePatch(avatar_media_id=own.upper()))
    for avatar in (scene.world.add_media(bob.user_id),  # someone else's
                   scene.world.add_media(ann.user_id, status="pending"),  # not verified yet
                   "0190f000-0000-7000-8000-0000000000aa"):  # no media at all
        with pytest.raises(ValidationFailed) as refused:
            await scene.service.update_me(ann, ProfilePatch(bio="kept?", avatar_media_id=avatar))
        assert refused.value.code == "invalid_media"
        assert [e.field for e in refused.value.errors or []] == ["avatar_media_id"]
    me = scene.world.users[ann.user_id]
    assert (me.avatar_media_id, me.bio) == (own.upper(), "")  # nothing of a refused patch


def test_profile_patch_needs_a_field_and_checks_lengths() -> None:
    with pytest.raises(msgspec.ValidationError, match="at least one"):
        msgspec.json.decode(b"{}", type=ProfilePatch)
    with pytest.raises(msgspec.ValidationError, match="bio"):
        msgspec.json.decode(b'{"bio": "' + b"x" * 301 + b'"}', type=ProfilePatch)
    for avatar in (b'"not-a-uuid"', b'"0190f000-0000-7000-8000-0000000000aa\\n"', b"7"):
        with pytest.raises(msgspec.ValidationError, match="avatar_media_id"):
            msgspec.json.decode(b'{"avatar_media_id": %s}' % avatar, type=ProfilePatch)
    assert msgspec.json.decode(b'{"display_name": ""}', type=ProfilePatch).display_name == ""
    # No control characters in a name; line breaks in a bio, but never NUL (Postgres refuses).
    for raw in (b'{"display_name": "a\\nb"}', b'{"display_name": "ab\\n"}',
                b'{"bio": "a\\u0000b"}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=ProfilePatch)
    assert msgspec.json.decode(b'{"bio": "a\\nb\\n"}', type=ProfilePatch).bio == "a\nb\n"


@pytest.mark.parametrize("action", ["follow", "unfollow", "block", "unblock", "mute", "unmute"])
async def test_acting_on_yourself_is_self_action(scene: Scene, action: str) -> None:
    ann = scene.user("ann")
    for ref in (ann.user_id, "@ann", "me"):
        with pytest.raises(ValidationFailed) as info:
            await getattr(scene.service, action)(ann, ref)
        assert info.value.code == "self_action"


async def test_follow_is_idempotent_and_counts_once(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    for _ in range(3):
        rel = await scene.service.follow(ann, "@bob")
        assert rel.following and not rel.followed_by and rel.user_id == bob.user_id
    assert scene.counts(bob) == (1, 0) and scene.counts(ann) == (0, 1)
    profile = await scene.service.profile(bob, ann.user_id)
    assert profile.follows_me and not profile.followed_by_me
    for _ in range(2):
        assert not (await scene.service.unfollow(ann, bob.user_id)).following
    assert scene.counts(bob) == (0, 0) and scene.counts(ann) == (0, 0)


async def test_following_someone_you_block_is_409_blocked(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    await scene.service.block(ann, "@bob")
    with pytest.raises(Conflict) as info:
        await scene.service.follow(ann, "@bob")
    assert info.value.code == "blocked"
    await scene.service.unblock(ann, "@bob")
    assert (await scene.service.follow(ann, bob.user_id)).following


async def test_someone_who_blocks_you_is_not_found(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    await scene.service.block(bob, "@ann")
    for call in (scene.service.follow(ann, "@bob"), scene.service.profile(ann, bob.user_id),
                 scene.service.followers(ann, "@bob", PageQuery()),
                 scene.service.following(ann, "@bob", PageQuery())):
        with pytest.raises(NotFound):
            await call
    # The blocker does not see the blocked user either.
    with pytest.raises(NotFound):
        await scene.service.profile(bob, "@ann")
    # You may still protect yourself from someone who blocks you.
    assert (await scene.service.block(ann, "@bob")).blocking
    assert (await scene.service.mute(ann, "@bob")).muting


async def test_block_removes_follows_both_ways_and_fixes_counts(scene: Scene) -> None:
    ann, bob = scene.user("ann"), scene.user("bob")
    await scene.service.follow(ann, "@bob")
    await scene.service.follow(bob, "@ann")
    assert scene.counts(ann) == (1, 1) and scene.counts(bob) == (1, 1)
    rel = await scene.service.block(ann, "@bob")
    assert rel.blocking and not rel.following and not rel.followed_by
    assert scene.counts(ann) == (0, 0) and scene.counts(bob) == (0, 0)
    await scene.service.block(ann, "@bob")  # idempotent
    rel = await scene.service.unblock(ann, "@bob")
    assert not rel.blocking and not rel.following  # the follows stay removed
    assert (await scene.service.profile(bob, "@ann")).id == ann.user_id


async def test_mute_shows_in_relationship_and_profile(scene: Scene) -> None:
    ann, _ = scene.user("ann"), scene.user("bob")
    assert (await scene.service.mute(ann, "@bob")).muting
    assert (await scene.service.mute(ann, "@bob")).muting
    assert (await scene.service.profile(ann, "@bob")).muted_by_me
    assert not (await scene.service.unmute(ann, "@bob")).muting
    assert not (await scene.service.profile(ann, "@bob")).muted_by_me


async def test_follower_pages_cover_everyone_once_newest_first(scene: Scene) -> None:
    star = scene.user("star")
    fans = [scene.user(f"fan{i}") for i in range(7)]
    for fan in fans:
        await scene.service.follow(fan, "@star")
    seen, cursor = [], None
    while True:
        page = await scene.service.followers(star, "@star", PageQuery(limit=3, cursor=cursor))
        seen += [u.id for u in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f.user_id for f in reversed(fans)]
    following = await scene.service.following(fans[0], "me", PageQuery())
    assert [u.username for u in following.items] == ["star"] and following.next_cursor is None


async def test_lists_leave_out_users_hidden_from_the_viewer(scene: Scene) -> None:
    star, ann, bob, carl = (scene.user(n) for n in ("star", "ann", "bob", "carl"))
    for fan in (ann, bob, carl):
        await scene.service.follow(fan, "@star")
    await scene.service.block(bob, "@ann")  # bob blocks ann: ann must not see bob
    page = await scene.service.followers(ann, "@star", PageQuery())
    assert [u.username for u in page.items] == ["carl", "ann"]
    page = await scene.service.followers(star, "@star", PageQuery())
    assert [u.username for u in page.items] == ["carl", "bob", "ann"]


@pytest.mark.parametrize("cursor", ["garbage!", "W10", "WyJ4IiwieSJd", "e30"])
async def test_tampered_cursor_is_400(scene: Scene, cursor: str) -> None:
    ann = scene.user("ann")
    with pytest.raises(BadRequest) as info:
        await scene.service.followers(ann, "me", PageQuery(cursor=cursor))
    assert info.value.code == "invalid_cursor"


async def test_roles_and_the_last_admin(scene: Scene) -> None:
    root, ann = scene.user("root", "admin"), scene.user("ann")
    with pytest.raises(Conflict) as info:
        await scene.service.set_role(root, "me", "user")
    assert info.value.code == "last_admin"
    assert (await scene.service.set_role(root, "@ann", "admin")).role == "admin"
    assert (await scene.service.set_role(root, "me", "user")).role == "user"
    # An admin's view ignores blocks: ann blocked root, yet root can still set her role.
    await scene.service.block(ann, root.user_id)
    with pytest.raises(Conflict):
        await scene.service.set_role(root, "@ann", "moderator")  # ann is the last admin now
    assert (await scene.service.set_role(root, "@root", "admin")).role == "admin"
    assert (await scene.service.set_role(root, "@ann", "moderator")).role == "moderator"
    with pytest.raises(NotFound):
        await scene.service.set_role(root, "@nobody", "admin")
