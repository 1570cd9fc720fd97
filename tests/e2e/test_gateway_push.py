"""Live push from REST actions: a new post reaches followers' sockets as `feed:new`, a like
or a comment reaches the author's sockets as `notification`."""

from __future__ import annotations

import aiohttp

from tests.e2e.live import Account, Live, signup
from tests.support.server import HubbubProcess

PUSH_DEADLINE = 20.0  # through the outbox relay and the event bus consumers


async def post(http: aiohttp.ClientSession, who: Account, path: str, body: object,
               status: int) -> dict:
    async with http.post(path, json=body, headers=who.auth) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def test_feed_new_and_notifications_arrive_live(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "author"), await signup(http, "fan")
    async with http.post(f"/v1/users/{ann.id}/follow", headers=bob.auth) as response:
        assert response.status in (200, 201, 204), await response.text()
    author = await Live.connect(hubbub.base_url, ann.token)
    fan = await Live.connect(hubbub.base_url, bob.token)

    created = await post(http, ann, "/v1/posts", {"text": "live from the feed"}, 201)
    pushed = await fan.expect("feed:new", lambda d: d["post"]["id"] == created["id"],
                              timeout=PUSH_DEADLINE)
    assert pushed["post"]["text"] == "live from the feed"
    assert pushed["post"]["author"]["id"] == ann.id
    assert pushed["post"]["liked_by_me"] is False

    await post(http, bob, f"/v1/posts/{created['id']}/like", None, 200)
    liked = await author.expect("notification",
                                lambda d: d["notification"]["kind"] == "like",
                                timeout=PUSH_DEADLINE)
    assert liked["notification"]["post_id"] == created["id"]
    assert liked["notification"]["actor"]["id"] == bob.id
    assert liked["unread_count"] >= 1

    await post(http, bob, f"/v1/posts/{created['id']}/comments", {"text": "nice"}, 201)
    commented = await author.expect("notification",
                                    lambda d: d["notification"]["kind"] == "comment",
                                    timeout=PUSH_DEADLINE)
    assert commented["unread_count"] == liked["unread_count"] + 1
    # The fan is not notified of their own actions.
    assert fan.seen("notification") == []
    for live in (author, fan):
        await live.close()
