"""Analytics through a real server: views, likes, comments, reposts and quotes of a post
reach its author's /analytics (the consumer is asynchronous: polled against a deadline),
others get 404, the stats gain their fields, and best_times shows followers' hours."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.accounts import Account, signup
from tests.support.polling import eventually

DEADLINE = 15.0


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               status: int, **kwargs: Any) -> Any:
    async with http.request(method, path, headers=who.auth, **kwargs) as response:
        assert response.status == status, await response.text()
        return None if status == 204 else await response.json()


async def test_author_sees_engagement_in_analytics_and_others_get_404(
    http: aiohttp.ClientSession,
) -> None:
    author, fan, other = [await signup(http, "an") for _ in range(3)]
    await call(http, "POST", f"/v1/users/{author.id}/follow", fan, 200)
    post = await call(http, "POST", "/v1/posts", author, 201, json={"text": "measure me"})
    await call(http, "GET", f"/v1/posts/{post['id']}", fan, 200)  # a view
    await call(http, "POST", f"/v1/posts/{post['id']}/like", fan, 200)
    await call(http, "POST", f"/v1/posts/{post['id']}/comments", fan, 201, json={"text": "hi"})
    await call(http, "POST", f"/v1/posts/{post['id']}/repost", other, 201)
    await call(http, "POST", "/v1/posts", other, 201,
               json={"text": "look", "quote_of_id": post["id"]})
    path = f"/v1/posts/{post['id']}/analytics"
    seen: dict[str, Any] = {}

    async def counted() -> bool:
        body = await call(http, "GET", path, author, 200)
        seen.update(body["totals"])
        return (body["totals"]["likes"], body["totals"]["comments"], body["totals"]["reposts"],
                body["totals"]["quotes"], body["totals"]["views"]) == (1, 1, 1, 1, 1)

    await eventually(counted, DEADLINE, "the engagement to reach the author's analytics")
    assert seen["engagements"] == 4 and seen["engagement_rate"] == 4.0

    daily = await call(http, "GET", path + "?bucket=day", author, 200)
    assert daily["bucket"] == "day" and sum(p["likes"] for p in daily["series"]) == 1
    for who in (fan, other):
        await call(http, "GET", path, who, 404)
    await call(http, "GET", path + "?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z",
               author, 422)

    stats = await call(http, "GET", f"/v1/users/{author.id}/stats", other, 200)
    assert stats["views_received"] == 1 and stats["engagements_received"] == 4
    assert stats["best_posts"][0]["post_id"] == post["id"]
    assert stats["followers_growth"]["gained"] == 1


async def test_best_times_show_followers_hours_with_evidence(
    http: aiohttp.ClientSession,
) -> None:
    author, fan = await signup(http, "bt"), await signup(http, "bt")
    await call(http, "POST", f"/v1/users/{author.id}/follow", fan, 200)
    post = await call(http, "POST", "/v1/posts", author, 201, json={"text": "when?"})
    await call(http, "POST", f"/v1/posts/{post['id']}/like", fan, 200)
    body: dict[str, Any] = {}

    async def has_slots() -> bool:
        body.update(await call(http, "GET", "/v1/users/me/best_times?timezone=Europe/Paris",
                               author, 200))
        return bool(body["slots"])

    await eventually(has_slots, DEADLINE, "the follower's like to show in best times")
    [slot] = body["slots"]
    assert body["timezone"] == "Europe/Paris" and body["window_days"] == 28
    assert (slot["engagements"], slot["active_followers"], slot["score"]) == (1, 1, 3)
    await call(http, "GET", "/v1/users/me/best_times?timezone=Nowhere/Land", author, 422)
