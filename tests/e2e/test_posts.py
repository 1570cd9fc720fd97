"""Posts through a real server: create/get/delete and who may delete, validation, filters and
search, replies, quotes, reposts, comments, likes (exact under 50 concurrent likers), the daily
limit and the route's own rate limit, metrics, user posts and stats, blocks and mutes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.conftest import sibling_server
from tests.e2e.test_users_graph import PASSWORD, Account, call, signup
from tests.support.server import HubbubProcess


@pytest.fixture(scope="module", autouse=True)
def no_server_errors(hubbub: HubbubProcess) -> Iterator[None]:
    """Whatever these tests send, no post route answers 500 (bad input is never a crash)."""
    yield
    crashes = [e for e in hubbub.logs()
               if str(e.get("route", "")).startswith("posts.") and e.get("status", 0) >= 500]
    assert crashes == []


async def post(http: aiohttp.ClientSession, who: Account, text: str = "hello",
               status: int = 201, **fields: Any) -> dict[str, Any]:
    return await call(http, "POST", "/v1/posts", who, status, json={"text": text, **fields})


async def promote(hubbub: HubbubProcess, http: aiohttp.ClientSession, who: Account,
                  role: str) -> Account:
    """Grant a role with the CLI, then log in again for a token that carries it."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "server.cli", "set-role", who.username, role],
        env={**os.environ, "DATABASE_URL": hubbub.env["DATABASE_URL"]},
        capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    async with http.post("/v1/auth/login", json={"identifier": who.username,
                                                  "password": PASSWORD}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["user"]["role"] == role
    return Account(id=who.id, username=who.username, token=body["access_token"])


async def test_create_get_and_who_may_delete(http: aiohttp.ClientSession,
                                             hubbub: HubbubProcess) -> None:
    ann, bob, mod = [await signup(http, n) for n in ("ann", "bob", "mod")]
    created = await post(http, ann, "Hello @" + bob.username)
    assert set(created) >= {"id", "author", "text", "media", "created_at", "reply_to_id",
                            "quote_of", "repost_of", "like_count", "comment_count",
                            "repost_count", "liked_by_me", "reposted_by_me"}
    assert created["author"] == {"id": ann.id, "username": ann.username,
                                 "display_name": ann.username}
    assert (created["media"], created["quote_of"], created["repost_of"]) == ([], None, None)
    assert await call(http, "GET", f"/v1/posts/{created['id']}", bob, 200) == created

    problem = await call(http, "DELETE", f"/v1/posts/{created['id']}", bob, 403)
    assert problem["code"] == "not_author"
    moderator = await promote(hubbub, http, mod, "moderator")
    async with http.delete(f"/v1/posts/{created['id']}", headers=moderator.auth) as response:
        assert response.status == 204
    problem = await call(http, "GET", f"/v1/posts/{created['id']}", ann, 404)
    assert problem["code"] == "post_not_found"
    await call(http, "DELETE", f"/v1/posts/{created['id']}", ann, 404)

    own = await post(http, ann, "mine")
    async with http.delete(f"/v1/posts/{own['id']}", headers=ann.auth) as response:
        assert response.status == 204
    for ref in (str(uuid.uuid4()), "not-an-id", "%00", own["id"]):
        await call(http, "GET", f"/v1/posts/{ref}", ann, 404)
        await call(http, "DELETE", f"/v1/posts/{ref}", ann, 404)
    async with http.get(f"/v1/posts/{own['id']}") as response:
        assert response.status == 401


async def test_bad_posts_are_refused_with_field_errors(http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ann")
    for body, field in [({"text": ""}, "text"), ({"text": "x" * 501}, "text"),
                        ({"text": " \n\t "}, "text"), ({"text": "nul\u0000"}, "text"),
                        ({"text": "x", "media_ids": [str(uuid.uuid4()) for _ in range(11)]},
                         "media_ids"),
                        ({"text": "x", "reply_to_id": "nope"}, "reply_to_id"),
                        ({"text": "x", "colour": "red"}, "colour"), ({}, "text")]:
        problem = await call(http, "POST", "/v1/posts", ann, 422, json=body)
        assert field in (problem["errors"][0]["field"] + problem["errors"][0]["message"])
    problem = await post(http, ann, "x", 422, reply_to_id=str(uuid.uuid4()))
    assert problem["code"] == "reply_not_found"
    problem = await post(http, ann, "x", 422, quote_of_id=str(uuid.uuid4()))
    assert problem["code"] == "quote_not_found"
    async with http.post("/v1/posts", data=b"{not json",
                         headers={**ann.auth, "Content-Type": "application/json"}) as response:
        assert response.status == 400
    async with http.post("/v1/posts", data=b"text=hi", headers={
            **ann.auth, "Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 415
    await call(http, "POST", f"/v1/posts/{uuid.uuid4()}/comments", ann, 404,
               json={"text": "hi"})
    assert len((await post(http, ann, "é" * 500))["text"]) == 500


async def test_filters_search_and_pages(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    tag = "t" + uuid.uuid4().hex[:10]
    first = await post(http, ann, f"{tag} about cats")
    second = await post(http, ann, f"{tag} about dogs")
    third = await post(http, bob, f"{tag} about birds")

    async def ids(**params: str) -> list[str]:
        page = await call(http, "GET", "/v1/posts", ann, 200, params=params)
        return [p["id"] for p in page["items"]]

    everyone = sorted([first["id"], second["id"], third["id"]], reverse=True)
    assert await ids(q=tag) == everyone
    assert await ids(q=f"{tag} dogs") == [second["id"]]
    assert await ids(q=f"{tag} -dogs", author=f"@{ann.username}") == [first["id"]]
    assert set(await ids(q=tag, author=bob.id)) == {third["id"]}
    assert await ids(q=tag, has_media="true") == []
    assert await ids(q=tag, since=second["created_at"]) == sorted(
        [second["id"], third["id"]], reverse=True)
    assert await ids(q=tag, until=second["created_at"]) == [first["id"]]
    assert await ids(q=tag, author="@nobody_" + uuid.uuid4().hex[:6]) == []

    page = await call(http, "GET", "/v1/posts", ann, 200, params={"q": tag, "limit": "2"})
    assert [p["id"] for p in page["items"]] == everyone[:2] and page["next_cursor"]
    rest = await call(http, "GET", "/v1/posts", ann, 200,
                      params={"q": tag, "limit": "2", "cursor": page["next_cursor"]})
    assert [p["id"] for p in rest["items"]] == everyone[2:] and rest["next_cursor"] is None

    for weird in ['"', "!!!", "(((", ":*", "\\", "' OR 1=1 --", "a & | !", "-", "or",
                  "x" * 256, "%FF"]:
        await call(http, "GET", "/v1/posts", ann, 200, params={"q": weird})
    for params, status in [({"q": "x" * 257}, 422), ({"q": "a\u0000b"}, 422),
                           ({"since": "yesterday"}, 422), ({"until": "2024-01-01"}, 422),
                           ({"since": "0001-01-01T00:00:00+01:00"}, 422),
                           ({"has_media": "maybe"}, 422), ({"author": "bob"}, 422),
                           ({"cursor": "garbage"}, 400), ({"limit": "101"}, 422),
                           ({"sort": "new"}, 422)]:
        await call(http, "GET", "/v1/posts", ann, status, params=params)


async def test_replies_and_quotes(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    root = await post(http, ann, "root")
    replies = [await post(http, bob, f"reply {i}", reply_to_id=root["id"]) for i in range(3)]
    assert replies[0]["reply_to_id"] == root["id"]
    page = await call(http, "GET", f"/v1/posts/{root['id']}/replies", ann, 200,
                      params={"limit": "2"})
    rest = await call(http, "GET", f"/v1/posts/{root['id']}/replies", ann, 200,
                      params={"limit": "2", "cursor": page["next_cursor"]})
    shown = [p["id"] for p in page["items"] + rest["items"]]
    assert shown == sorted(r["id"] for r in replies)  # oldest first

    quote = await post(http, bob, "look at this", quote_of_id=root["id"])
    assert quote["quote_of"]["id"] == root["id"] and quote["quote_of"]["text"] == "root"
    metrics = await call(http, "GET", f"/v1/posts/{root['id']}/metrics", bob, 200)
    assert (metrics["replies"], metrics["quotes"]) == (3, 1)
    async with http.delete(f"/v1/posts/{root['id']}", headers=ann.auth) as response:
        assert response.status == 204
    again = await call(http, "GET", f"/v1/posts/{quote['id']}", ann, 200)
    assert again["quote_of"] is None  # a deleted quoted post shows as null


async def test_repost_and_undo(http: aiohttp.ClientSession) -> None:
    ann, bob, carl = [await signup(http, n) for n in ("ann", "bob", "carl")]
    original = await post(http, ann, "worth sharing")
    repost = await call(http, "POST", f"/v1/posts/{original['id']}/repost", bob, 201)
    assert repost["repost_of"]["id"] == original["id"] and repost["author"]["id"] == bob.id
    assert repost["reposted_by_me"] is True and repost["text"] == ""
    again = await call(http, "POST", f"/v1/posts/{original['id']}/repost", bob, 200)
    assert again["id"] == repost["id"]
    via = await call(http, "POST", f"/v1/posts/{repost['id']}/repost", carl, 201)
    assert via["repost_of"]["id"] == original["id"]
    seen = await call(http, "GET", f"/v1/posts/{original['id']}", ann, 200)
    assert seen["repost_count"] == 2

    mine = await call(http, "GET", f"/v1/users/{bob.id}/posts", ann, 200)
    assert [p["id"] for p in mine["items"]] == [repost["id"]]
    for _ in range(2):
        async with http.delete(f"/v1/posts/{original['id']}/repost",
                               headers=bob.auth) as response:
            assert response.status == 204
    await call(http, "GET", f"/v1/posts/{repost['id']}", bob, 404)
    seen = await call(http, "GET", f"/v1/posts/{original['id']}", bob, 200)
    assert (seen["repost_count"], seen["reposted_by_me"]) == (1, False)
    await call(http, "POST", f"/v1/posts/{uuid.uuid4()}/repost", bob, 404)


async def test_comments(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    target = await post(http, ann, "comment on me")
    made = [await call(http, "POST", f"/v1/posts/{target['id']}/comments", bob, 201,
                       json={"text": f"nice {i} @{ann.username}"}) for i in range(3)]
    assert set(made[0]) == {"id", "post_id", "author", "text", "created_at"}
    assert made[0]["author"]["id"] == bob.id and made[0]["post_id"] == target["id"]
    page = await call(http, "GET", f"/v1/posts/{target['id']}/comments", ann, 200,
                      params={"limit": "2"})
    rest = await call(http, "GET", f"/v1/posts/{target['id']}/comments", ann, 200,
                      params={"limit": "2", "cursor": page["next_cursor"]})
    assert [c["id"] for c in page["items"] + rest["items"]] == sorted(c["id"] for c in made)
    for body in ({"text": ""}, {"text": "x" * 501}, {"text": "x", "extra": 1}):
        await call(http, "POST", f"/v1/posts/{target['id']}/comments", bob, 422, json=body)
    metrics = await call(http, "GET", f"/v1/posts/{target['id']}/metrics", ann, 200)
    assert metrics["comments"] == 3


async def test_likes_are_idempotent_and_exact_under_fifty_concurrent_likers(
    http: aiohttp.ClientSession,
) -> None:
    author = await signup(http, "star")
    target = await post(http, author, "like me")
    fans = await asyncio.gather(*(signup(http, "fan") for _ in range(50)))
    results = await asyncio.gather(*(
        call(http, "POST", f"/v1/posts/{target['id']}/like", fan, 200) for fan in fans))
    assert all(r["liked"] is True for r in results)
    assert sorted(r["like_count"] for r in results) == list(range(1, 51))
    again = await asyncio.gather(*(
        call(http, "POST", f"/v1/posts/{target['id']}/like", fans[0], 200) for _ in range(10)))
    assert {r["like_count"] for r in again} == {50}
    seen = await call(http, "GET", f"/v1/posts/{target['id']}", fans[1], 200)
    assert (seen["like_count"], seen["liked_by_me"]) == (50, True)

    likers: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "20", **({"cursor": cursor} if cursor else {})}
        page = await call(http, "GET", f"/v1/posts/{target['id']}/likes", author, 200,
                          params=params)
        likers += [u["id"] for u in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(likers) == sorted(f.id for f in fans)

    for _ in range(2):
        state = await call(http, "DELETE", f"/v1/posts/{target['id']}/like", fans[0], 200)
        assert state == {"liked": False, "like_count": 49}
    metrics = await call(http, "GET", f"/v1/posts/{target['id']}/metrics", author, 200)
    assert metrics["likes"] == 49


async def test_blocked_posts_are_404_and_muted_posts_leave_lists(
    http: aiohttp.ClientSession,
) -> None:
    ann, bob, carl = [await signup(http, n) for n in ("ann", "bob", "carl")]
    tag = "m" + uuid.uuid4().hex[:10]
    bob_post = await post(http, bob, f"{tag} bob")
    carl_post = await post(http, carl, f"{tag} carl")
    await call(http, "POST", f"/v1/users/{ann.id}/block", bob, 200)
    await call(http, "POST", f"/v1/users/{carl.id}/mute", ann, 200)
    await call(http, "GET", f"/v1/posts/{bob_post['id']}", ann, 404)
    await call(http, "POST", f"/v1/posts/{bob_post['id']}/like", ann, 404)
    await call(http, "POST", f"/v1/posts/{bob_post['id']}/comments", ann, 404,
               json={"text": "hi"})
    assert (await call(http, "GET", f"/v1/posts/{carl_post['id']}", ann, 200))["id"]
    page = await call(http, "GET", "/v1/posts", ann, 200, params={"q": tag})
    assert page["items"] == []
    page = await call(http, "GET", "/v1/posts", ann, 200,
                      params={"q": tag, "author": f"@{carl.username}"})
    assert [p["id"] for p in page["items"]] == [carl_post["id"]]
    await call(http, "GET", f"/v1/users/{bob.id}/posts", ann, 404)
    await call(http, "GET", f"/v1/users/{bob.id}/stats", ann, 404)


async def test_metrics_views_and_user_stats(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "ann"), await signup(http, "bob")
    target = await post(http, ann, "count my views")
    await call(http, "GET", f"/v1/posts/{target['id']}", ann, 200)  # the author: no view
    for _ in range(3):
        await call(http, "GET", f"/v1/posts/{target['id']}", bob, 200)
    await call(http, "POST", f"/v1/posts/{target['id']}/like", bob, 200)
    await call(http, "POST", f"/v1/posts/{target['id']}/repost", bob, 201)
    metrics = await call(http, "GET", f"/v1/posts/{target['id']}/metrics", bob, 200)
    assert metrics == {"post_id": target["id"], "likes": 1, "comments": 0, "reposts": 1,
                       "quotes": 0, "replies": 0, "views": 3}
    await call(http, "POST", f"/v1/users/{ann.id}/follow", bob, 200)
    stats = await call(http, "GET", f"/v1/users/@{ann.username}/stats", bob, 200)
    assert {k: stats[k] for k in ("followers", "following", "posts", "reposts",
                                  "likes_received", "reposts_received")} == {
        "followers": 1, "following": 0, "posts": 1, "reposts": 0, "likes_received": 1,
        "reposts_received": 1}
    mine = await call(http, "GET", "/v1/users/me/stats", bob, 200)
    assert (mine["following"], mine["reposts"], mine["likes_given"]) == (1, 1, 1)
    await call(http, "GET", f"/v1/users/{uuid.uuid4()}/stats", bob, 404)


# A second server whose daily limit is 3 and whose route limits are the real ones.


@pytest.fixture(scope="module")
def strict(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    with sibling_server(hubbub, POSTS_PER_DAY="3", REDIS_URL="", RATE_LIMIT_PER_MINUTE="",
                        RATE_LIMIT_ROUTES="") as server:
        yield server


@pytest_asyncio.fixture
async def strict_http(strict: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=strict.base_url) as session:
        yield session


async def test_daily_limit_then_the_route_rate_limit(http: aiohttp.ClientSession,
                                                     strict_http: aiohttp.ClientSession) -> None:
    # Accounts come from the shared server (same database and JWT secret, lifted limits).
    ann = await signup(http, "ann")
    for i in range(3):
        await post(strict_http, ann, f"post {i}")
    async with strict_http.post("/v1/posts", json={"text": "one too many"},
                                headers=ann.auth) as response:
        assert response.status == 429
        problem = await response.json(content_type=None)
        assert problem["code"] == "daily_limit"
        assert 0 < int(response.headers["Retry-After"]) <= 24 * 3600

    # POST /v1/posts allows 10 requests a minute per client, whoever posts.
    codes: list[str] = []
    for _ in range(3):
        other = await signup(http, "rl")
        for _ in range(3):
            async with strict_http.post("/v1/posts", json={"text": "hi"},
                                        headers=other.auth) as response:
                if response.status == 429:
                    codes.append((await response.json(content_type=None))["code"])
    assert "rate_limited" in codes


# Idempotency-Key and posts with images.
