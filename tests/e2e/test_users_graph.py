"""Profiles, follows, blocks, mutes and roles through a real server, with real tokens."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import aiohttp

from tests.support.accounts import PASSWORD, Account, signup
from tests.support.images import png
from tests.support.server import HubbubProcess


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               status: int, **kwargs: Any) -> Any:
    async with http.request(method, path, headers=who.auth, **kwargs) as response:
        assert response.status == status, await response.text()
        if response.content_type == "application/problem+json":
            return await response.json(content_type=None)
        return await response.json()


async def get_profile(http: aiohttp.ClientSession, who: Account, ref: str) -> dict[str, Any]:
    return await call(http, "GET", f"/v1/users/{ref}", who, 200)


async def test_profile_by_id_username_and_me(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    by_id = await get_profile(http, ann, bob.id)
    assert by_id["username"] == bob.username and by_id["follower_count"] == 0
    assert by_id["followed_by_me"] is False and "email" not in by_id
    assert await get_profile(http, ann, f"@{bob.username.upper()}") == by_id
    assert (await get_profile(http, ann, "me"))["id"] == ann.id
    for ref in ("not-an-id", "@nobody_" + uuid.uuid4().hex[:8], str(uuid.uuid4()), "%40",
                "@a%00b", "%FF", "@" + "x" * 300):
        problem = await call(http, "GET", f"/v1/users/{ref}", ann, 404)
        assert problem["status"] == 404
    async with http.get(f"/v1/users/{bob.id}") as response:
        assert response.status == 401


async def upload_image(http: aiohttp.ClientSession, who: Account) -> str:
    form = aiohttp.FormData()
    form.add_field("file", png(), filename="avatar.png", content_type="image/png")
    async with http.post("/v1/media", data=form, headers=who.auth) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["id"]


async def test_patch_me(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ann")
    avatar = await upload_image(http, ann)
    me = await call(http, "PATCH", "/v1/users/me", ann, 200,
                    json={"bio": "hello", "display_name": "Ann A.", "avatar_media_id": avatar})
    assert (me["bio"], me["display_name"], me["avatar_media_id"]) == ("hello", "Ann A.", avatar)
    assert me["email"].startswith(ann.username)
    me = await call(http, "PATCH", "/v1/users/me", ann, 200, json={"avatar_media_id": None})
    assert (me["bio"], me["avatar_media_id"]) == ("hello", None)
    assert (await get_profile(http, ann, "me"))["display_name"] == "Ann A."

    problem = await call(http, "PATCH", "/v1/users/me", ann, 422, json={"bio": "x" * 301})
    assert problem["errors"] == [{"field": "bio", "message": "must have at most 300 characters"}]
    problem = await call(http, "PATCH", "/v1/users/me", ann, 422, json={"nickname": "x"})
    assert problem["errors"][0]["field"] == "nickname"
    assert "not a known field" in problem["errors"][0]["message"]
    await call(http, "PATCH", "/v1/users/me", ann, 422, json={})
    await call(http, "PATCH", "/v1/users/me", ann, 422, json={"avatar_media_id": "nope"})
    await call(http, "PATCH", "/v1/users/me", ann, 422, json={"bio": "nul\u0000byte"})


async def test_invalid_fields_are_all_named_in_words(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ann")
    problem = await call(http, "PATCH", "/v1/users/me", ann, 422, json={
        "display_name": "two\nlines", "bio": "nul\u0000", "avatar_media_id": "nope",
        "nickname": "x"})
    assert [e["field"] for e in problem["errors"]] == [
        "display_name", "bio", "avatar_media_id", "nickname"]
    assert all("regex" not in e["message"] and "Expected" not in e["message"]
               for e in problem["errors"]), problem["errors"]
    assert problem["detail"] == \
        "The body is invalid: display_name, bio, avatar_media_id, nickname"


async def test_the_avatar_must_be_your_own_ready_image(http: aiohttp.ClientSession) -> None:
    """Issue 9: any UUID was taken as avatar_media_id, another user's media included."""
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    bobs = await upload_image(http, bob)
    async with http.post("/v1/media/uploads", headers=ann.auth,
                         json={"content_type": "image/png", "size": 100}) as response:
        assert response.status == 201, await response.text()
        pending = (await response.json())["id"]  # never uploaded: not ready
    for avatar in (bobs, pending, str(uuid.uuid4())):
        problem = await call(http, "PATCH", "/v1/users/me", ann, 422,
                             json={"avatar_media_id": avatar, "bio": "not applied"})
        assert problem["code"] == "invalid_media"
        assert [e["field"] for e in problem["errors"]] == ["avatar_media_id"]
    me = await get_profile(http, ann, "me")
    assert (me["avatar_media_id"], me["bio"]) == (None, "")
    own = await upload_image(http, ann)
    me = await call(http, "PATCH", "/v1/users/me", ann, 200,
                    json={"avatar_media_id": own.upper()})
    assert me["avatar_media_id"] == own


async def test_follow_and_unfollow_are_idempotent_and_counted(
    http: aiohttp.ClientSession,
) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    for _ in range(2):
        rel = await call(http, "POST", f"/v1/users/@{bob.username}/follow", ann, 200)
        assert rel == {"user_id": bob.id, "following": True, "followed_by": False,
                       "blocking": False, "muting": False}
    bob_seen = await get_profile(http, ann, bob.id)
    assert bob_seen["follower_count"] == 1 and bob_seen["followed_by_me"] is True
    ann_seen = await get_profile(http, bob, ann.id)
    assert ann_seen["following_count"] == 1 and ann_seen["follows_me"] is True
    for _ in range(2):
        rel = await call(http, "DELETE", f"/v1/users/{bob.id}/follow", ann, 200)
        assert rel["following"] is False
    assert (await get_profile(http, ann, bob.id))["follower_count"] == 0
    problem = await call(http, "POST", "/v1/users/me/follow", ann, 422)
    assert problem["code"] == "self_action"
    problem = await call(http, "POST", f"/v1/users/{ann.id}/follow", ann, 422)
    assert problem["code"] == "self_action"


async def _walk(http: aiohttp.ClientSession, who: Account, path: str,
                limit: int) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = await call(http, "GET", path, who, 200, params=params)
        assert len(page["items"]) <= limit
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_followers_and_following_pages(http: aiohttp.ClientSession) -> None:
    star = await signup(http, "star")
    fans = [await signup(http, "fan") for _ in range(3)]
    for fan in fans:
        await call(http, "POST", f"/v1/users/{star.id}/follow", fan, 200)
    await call(http, "POST", f"/v1/users/{fans[1].id}/follow", fans[0], 200)
    newest_first = [fan.id for fan in reversed(fans)]
    assert await _walk(http, fans[0], f"/v1/users/{star.id}/followers", 2) == newest_first
    assert await _walk(http, star, "/v1/users/me/followers", 1) == newest_first
    following = await _walk(http, star, f"/v1/users/@{fans[0].username}/following", 1)
    assert following == [fans[1].id, star.id]
    page = await call(http, "GET", f"/v1/users/{star.id}/followers", star, 200)
    assert page["next_cursor"] is None and page["items"][0] == {
        "id": fans[2].id, "username": fans[2].username, "display_name": fans[2].username}

    problem = await call(http, "GET", f"/v1/users/{star.id}/followers", star, 400,
                         params={"cursor": "bm90LWEtY3Vyc29y"})
    assert problem["code"] == "invalid_cursor"
    await call(http, "GET", f"/v1/users/{star.id}/followers", star, 422, params={"limit": "0"})
    await call(http, "GET", f"/v1/users/{star.id}/following", star, 422,
               params={"limit": "101"})


async def test_block_hides_both_ways_and_removes_follows(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    await call(http, "POST", f"/v1/users/{bob.id}/follow", ann, 200)
    await call(http, "POST", f"/v1/users/{ann.id}/follow", bob, 200)
    rel = await call(http, "POST", f"/v1/users/{bob.id}/block", ann, 200)
    assert rel == {"user_id": bob.id, "following": False, "followed_by": False,
                   "blocking": True, "muting": False}
    await call(http, "POST", f"/v1/users/{bob.id}/block", ann, 200)  # idempotent
    for viewer, other in ((ann, bob), (bob, ann)):
        await call(http, "GET", f"/v1/users/{other.id}", viewer, 404)
        await call(http, "GET", f"/v1/users/@{other.username}", viewer, 404)
        await call(http, "GET", f"/v1/users/{other.id}/followers", viewer, 404)
    assert (await call(http, "POST", f"/v1/users/{bob.id}/follow", ann, 409))["code"] == "blocked"
    await call(http, "POST", f"/v1/users/{ann.id}/follow", bob, 404)

    rel = await call(http, "DELETE", f"/v1/users/{bob.id}/block", ann, 200)
    assert rel["blocking"] is False and rel["followed_by"] is False
    me = await get_profile(http, ann, "me")
    assert (me["follower_count"], me["following_count"]) == (0, 0)
    assert (await get_profile(http, bob, ann.id))["id"] == ann.id
    assert (await call(http, "POST", "/v1/users/me/block", ann, 422))["code"] == "self_action"


async def test_mute(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    rel = await call(http, "POST", f"/v1/users/{bob.id}/mute", ann, 200)
    assert rel["muting"] is True and rel["blocking"] is False
    assert (await get_profile(http, ann, bob.id))["muted_by_me"] is True
    assert (await get_profile(http, bob, ann.id))["muted_by_me"] is False
    rel = await call(http, "DELETE", f"/v1/users/{bob.id}/mute", ann, 200)
    assert rel["muting"] is False
    assert (await call(http, "POST", "/v1/users/me/mute", ann, 422))["code"] == "self_action"


async def test_role_route_is_for_admins(
    http: aiohttp.ClientSession, hubbub: HubbubProcess
) -> None:
    root, ann = await signup(http, "root"), await signup(http, "ann")
    await call(http, "PUT", f"/v1/admin/users/{ann.id}/role", root, 403, json={"role": "admin"})

    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "server.cli", "set-role", root.username, "admin"],
        env={**os.environ, "DATABASE_URL": hubbub.env["DATABASE_URL"]},
        capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    async with http.post("/v1/auth/login", json={"identifier": root.username,
                                                  "password": PASSWORD}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["user"]["role"] == "admin"
    admin = Account(id=root.id, username=root.username, token=body["access_token"])

    profile = await call(http, "PUT", f"/v1/admin/users/@{ann.username}/role", admin, 200,
                         json={"role": "moderator"})
    assert profile["id"] == ann.id and profile["role"] == "moderator"
    assert (await get_profile(http, root, ann.id))["role"] == "moderator"
    await call(http, "PUT", f"/v1/admin/users/{ann.id}/role", admin, 422, json={"role": "god"})
    await call(http, "PUT", f"/v1/admin/users/{uuid.uuid4()}/role", admin, 404,
               json={"role": "user"})
