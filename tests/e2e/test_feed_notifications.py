"""Feeds and notifications through real servers: the hybrid merge of pushed and pulled
authors, unfollow / block / mute / delete taking effect on the next read, the popular feed,
and notifications with unread counts and read marking.

Events are asynchronous (outbox -> relay -> consumers): their effects are awaited by polling
the API against a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.conftest import sibling_server
from tests.support.accounts import Account, signup
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

DEADLINE = 15.0
LATEST = "ffffffff-ffff-7fff-bfff-ffffffffffff"  # greater than any UUIDv7 id






async def signups(http: aiohttp.ClientSession, n: int, prefix: str = "f") -> list[Account]:
    return [await signup(http, prefix) for _ in range(n)]


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               status: int, **kwargs: Any) -> Any:
    async with http.request(method, path, headers=who.auth, **kwargs) as response:
        assert response.status == status, await response.text()
        if response.status == 204:
            return None
        return await response.json(content_type=None)


async def post(http: aiohttp.ClientSession, who: Account, text: str = "hello") -> str:
    return (await call(http, "POST", "/v1/posts", who, 201, json={"text": text}))["id"]


async def follow(http: aiohttp.ClientSession, who: Account, *others: Account) -> None:
    for other in others:
        await call(http, "POST", f"/v1/users/{other.id}/follow", who, 200)


async def feed(http: aiohttp.ClientSession, who: Account, path: str = "/v1/feed",
               **params: str) -> dict[str, Any]:
    return await call(http, "GET", path, who, 200, params=params)


async def feed_ids(http: aiohttp.ClientSession, who: Account, **params: str) -> list[str]:
    return [item["id"] for item in (await feed(http, who, **params))["items"]]


async def wait_for_feed(http: aiohttp.ClientSession, who: Account, expected: list[str],
                        what: str) -> None:
    async def shown() -> bool:
        return await feed_ids(http, who, limit="100") == expected

    await eventually(shown, DEADLINE, what)


# A server where an author with 2 followers is already "big" (pulled, not pushed), and the
# popular ranking is recomputed every second.


@pytest_asyncio.fixture(scope="module")
async def small_threshold_dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_pg_dsn, prefix="hubbub_e2e_feed")
    yield dsn
    await drop_database(admin_pg_dsn, dsn)


@pytest.fixture(scope="module")
def threshold_server(small_threshold_dsn: str,
                     hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    # Its own database: the event consumers that do the fan-out must be this server's.
    with sibling_server(hubbub, DATABASE_URL=small_threshold_dsn, FEED_PUSH_THRESHOLD="2",
                        FEED_POPULAR_TTL="1") as server:
        yield server


@pytest_asyncio.fixture
async def small_http(threshold_server: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=threshold_server.base_url) as session:
        yield session


async def test_pushed_and_pulled_authors_in_one_ordered_page(
    small_http: aiohttp.ClientSession, threshold_server: HubbubProcess
) -> None:
    http = small_http
    viewer, small, big, fan = await signups(http, 4)
    await follow(http, viewer, small, big)
    await follow(http, fan, big)  # big: 2 followers, at the threshold -> pulled
    await feed(http, viewer)  # the viewer reads once: their timeline exists
    posts = [await post(http, author, f"post {i}")
             for i, author in enumerate((big, small, viewer, big, small))]
    expected = posts[::-1]
    await wait_for_feed(http, viewer, expected, "the viewer's feed to show all five posts")
    page = await feed(http, viewer, limit="3")
    assert [p["id"] for p in page["items"]] == expected[:3]
    assert [p["author"]["id"] for p in page["items"]] == [small.id, big.id, viewer.id]
    rest = await feed(http, viewer, limit="3", cursor=page["next_cursor"])
    assert [p["id"] for p in rest["items"]] == expected[3:] and rest["next_cursor"] is None

    # The server pushed the small author's posts and left the big author's to be pulled.
    def modes() -> dict[str, str]:
        return {line["post_id"]: line["mode"] for line in threshold_server.logs()
                if line.get("msg") == "feed fan-out done"}

    await eventually(lambda: _true(set(posts) <= set(modes())), DEADLINE, "fan-out logs")
    assert [modes()[p] for p in posts] == ["pull", "push", "push", "pull", "push"]


async def _true(value: bool) -> bool:
    return value


async def test_popular_ranks_engagement_and_hides_blocked_authors(
    small_http: aiohttp.ClientSession,
) -> None:
    http = small_http
    author, reader, blocker = await signups(http, 3, "pop")
    hot = await post(http, author, "hot take")
    fans = [await signup(http, "fan") for _ in range(3)]
    for fan in fans:
        await call(http, "POST", f"/v1/posts/{hot}/like", fan, 200)
    await call(http, "POST", f"/v1/users/{author.id}/block", blocker, 200)

    async def ranked() -> bool:
        ids = [p["id"] for p in (await feed(http, reader, "/v1/feed/popular",
                                            limit="100"))["items"]]
        return hot in ids

    await eventually(ranked, DEADLINE, "the liked post to reach the popular feed")
    blocked_view = await feed(http, blocker, "/v1/feed/popular", limit="100")
    assert hot not in [p["id"] for p in blocked_view["items"]]
    first = await feed(http, reader, "/v1/feed/popular", limit="1")
    assert len(first["items"]) == 1
    await call(http, "GET", "/v1/feed/popular", reader, 400, params={"cursor": "garbage"})


# The shared server (threshold 10,000: everyone is pushed).


async def test_unfollow_block_mute_and_delete_take_effect_on_the_next_read(
    http: aiohttp.ClientSession,
) -> None:
    viewer, left, blocked, muted, deleted_by, kept = await signups(http, 6)
    await follow(http, viewer, left, blocked, muted, deleted_by, kept)
    await feed(http, viewer)
    posts = {who.id: await post(http, who) for who in (left, blocked, muted, deleted_by, kept)}
    await wait_for_feed(http, viewer, list(posts.values())[::-1], "five followed posts")

    await call(http, "DELETE", f"/v1/users/{left.id}/follow", viewer, 200)
    await call(http, "POST", f"/v1/users/{blocked.id}/block", viewer, 200)
    await call(http, "POST", f"/v1/users/{muted.id}/mute", viewer, 200)
    await call(http, "DELETE", f"/v1/posts/{posts[deleted_by.id]}", deleted_by, 204)
    assert await feed_ids(http, viewer) == [posts[kept.id]]  # at once, no waiting
    await call(http, "GET", "/v1/feed", viewer, 400, params={"cursor": "garbage"})
    await call(http, "GET", "/v1/feed", viewer, 422, params={"limit": "0"})


async def test_notifications_for_likes_comments_and_follows(http: aiohttp.ClientSession) -> None:
    author, fan, other = await signups(http, 3, "n")
    post_id = await post(http, author)
    await call(http, "POST", f"/v1/posts/{post_id}/like", fan, 200)
    await call(http, "POST", f"/v1/posts/{post_id}/like", fan, 200)  # idempotent: no event
    comment = await call(http, "POST", f"/v1/posts/{post_id}/comments", fan, 201,
                         json={"text": "nice"})
    await follow(http, fan, author)
    await call(http, "POST", f"/v1/posts/{post_id}/like", author, 200)  # own: no notification

    async def unread() -> int:
        body = await call(http, "GET", "/v1/notifications/unread_count", author, 200)
        return body["count"]

    async def three_unread() -> bool:
        return await unread() == 3

    await eventually(three_unread, DEADLINE, "like, comment and follow notifications")
    listed = await call(http, "GET", "/v1/notifications", author, 200, params={"limit": "2"})
    kinds = [n["kind"] for n in listed["items"]]
    assert kinds == ["follow", "comment"] and listed["next_cursor"]
    assert all(n["read"] is False and n["actor"]["id"] == fan.id for n in listed["items"])
    assert listed["items"][1]["comment_id"] == comment["id"]
    assert listed["items"][1]["post_id"] == post_id
    assert await unread() == 1  # exactly the two returned were marked read
    rest = await call(http, "GET", "/v1/notifications", author, 200,
                      params={"limit": "2", "cursor": listed["next_cursor"]})
    assert [n["kind"] for n in rest["items"]] == ["like"] and rest["next_cursor"] is None
    again = await call(http, "GET", "/v1/notifications", author, 200)
    assert [n["read"] for n in again["items"]] == [True, True, True]
    assert await unread() == 0

    await call(http, "POST", f"/v1/posts/{post_id}/like", other, 200)

    async def one_unread() -> bool:
        return await unread() == 1

    await eventually(one_unread, DEADLINE, "the second like's notification")
    older = again["items"][0]["id"]
    marked = await call(http, "POST", "/v1/notifications/read", author, 200,
                        json={"up_to_id": older})
    assert marked == {"count": 0, "unread_count": 1}  # the new one's id is greater
    marked = await call(http, "POST", "/v1/notifications/read", author, 200,
                        json={"up_to_id": LATEST})
    assert marked == {"count": 1, "unread_count": 0}
    problem = await call(http, "POST", "/v1/notifications/read", author, 422,
                         json={"up_to_id": "nope"})
    assert problem["errors"][0]["field"] == "up_to_id"
    async with http.get("/v1/notifications") as response:
        assert response.status == 401


async def test_reposts_and_quotes_reach_followers_and_notify_the_author(
    http: aiohttp.ClientSession,
) -> None:
    viewer, sharer, author = await signups(http, 3, "r")
    await follow(http, viewer, sharer)
    await feed(http, viewer)
    original = await post(http, author, "worth sharing")
    repost = await call(http, "POST", f"/v1/posts/{original}/repost", sharer, 201)
    quote = (await call(http, "POST", "/v1/posts", sharer, 201,
                        json={"text": "look at this", "quote_of_id": original}))["id"]
    await wait_for_feed(http, viewer, [quote, repost["id"]], "the repost and the quote")
    items = (await feed(http, viewer))["items"]
    assert items[1]["repost_of"]["id"] == original
    assert items[0]["quote_of"]["id"] == original

    async def notified() -> bool:
        body = await call(http, "GET", "/v1/notifications/unread_count", author, 200)
        return body["count"] == 2

    await eventually(notified, DEADLINE, "repost and quote notifications")
    listed = (await call(http, "GET", "/v1/notifications", author, 200))["items"]
    assert [(n["kind"], n["post_id"]) for n in listed] == [("quote", quote),
                                                           ("repost", original)]
    assert listed[0]["data"] == {"quoted_post_id": original}
    assert listed[1]["data"] == {"repost_id": repost["id"]}

    await call(http, "DELETE", f"/v1/posts/{original}/repost", sharer, 204)
    assert await feed_ids(http, viewer) == [quote]  # the undone repost is gone at once
