"""Presence and live push across nodes: one user on two nodes stays online until the last
device closes; notifications and feed items follow a user whose socket moved to another
node."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import aiohttp

from tests.e2e.cluster.clients import Rest, new_users
from tests.e2e.live import Account, Live
from tests.support.cluster import HubbubCluster
from tests.support.polling import holds

PUSH_DEADLINE = 20.0  # outbox -> relay -> consumers -> UserActor -> the socket's node


def grace(cluster: HubbubCluster) -> float:
    return float(cluster.env["PRESENCE_GRACE_SECONDS"])


async def test_d_one_user_on_two_nodes_is_online_until_the_last_device_closes(
        cluster: HubbubCluster, rest: Rest) -> None:
    ann, bob = await new_users(rest.on(2), 2, "twodev")
    watcher = await Live.connect(cluster.url(2), ann.token)
    phone = laptop = None
    try:
        first = await watcher.ok("presence:subscribe", {"user_ids": [bob.id]})
        assert first["presence"] == [{"user_id": bob.id, "status": "offline",
                                      "last_seen_at": None}]
        phone = await Live.connect(cluster.url(0), bob.token)
        online = await watcher.expect("presence", lambda p: p["user_id"] == bob.id)
        assert online == {"user_id": bob.id, "status": "online", "last_seen_at": None}
        laptop = await Live.connect(cluster.url(1), bob.token)
        await phone.close()

        async def still_online() -> bool:
            assert not watcher.seen("presence", lambda p: p["status"] != "online"), \
                watcher.seen("presence")
            answer = await watcher.ok("presence:subscribe", {"user_ids": [bob.id]})
            return answer["presence"][0]["status"] == "online"

        # Well past the grace period after the phone closed: the laptop keeps bob online.
        await holds(still_online, grace(cluster) + 2.0,
                    "bob online while his laptop on another node is connected")

        await laptop.close()
        closed_at = time.time()
        offline = await watcher.expect("presence", lambda p: p["status"] == "offline",
                                       timeout=grace(cluster) + 10)
        assert offline["user_id"] == bob.id
        last_seen = datetime.fromisoformat(offline["last_seen_at"]).timestamp()
        assert abs(last_seen - closed_at) < 5
        assert [p["status"] for p in watcher.seen("presence")] == ["online", "offline"]
        answer = await watcher.ok("presence:subscribe", {"user_ids": [bob.id]})
        assert answer["presence"][0]["status"] == "offline"
    finally:
        for live in (watcher, phone, laptop):
            if live is not None:
                await live.close()


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               status: int, **kwargs: Any) -> Any:
    async with http.request(method, path, headers=who.auth, **kwargs) as response:
        assert response.status == status, await response.text()
        return None if status == 204 else await response.json(content_type=None)


def kind(name: str) -> Any:
    return lambda d: d["notification"]["kind"] == name


async def test_e_notifications_and_feed_follow_a_socket_to_another_node(
        cluster: HubbubCluster, rest: Rest) -> None:
    una, vic = await new_users(rest.on(0), 2, "moved")
    own_post = await call(rest.on(0), "POST", "/v1/posts", una, 201, json={"text": "mine"})
    await call(rest.on(0), "POST", f"/v1/users/{vic.id}/follow", una, 200)
    before = await Live.connect(cluster.url(0), una.token)
    await before.close()
    moved = await Live.connect(cluster.url(1), una.token)
    try:
        # Vic acts over REST on the third node.
        far = rest.on(2)
        await call(far, "POST", f"/v1/users/{una.id}/follow", vic, 200)
        followed = await moved.expect("notification", kind("follow"), timeout=PUSH_DEADLINE)
        assert followed["notification"]["actor"]["id"] == vic.id

        await call(far, "POST", f"/v1/posts/{own_post['id']}/like", vic, 200)
        liked = await moved.expect("notification", kind("like"), timeout=PUSH_DEADLINE)
        assert liked["notification"]["post_id"] == own_post["id"]
        assert liked["notification"]["actor"]["id"] == vic.id
        assert liked["unread_count"] >= 2

        created = await call(far, "POST", "/v1/posts", vic, 201, json={"text": "from node 3"})
        pushed = await moved.expect("feed:new", lambda d: d["post"]["id"] == created["id"],
                                    timeout=PUSH_DEADLINE)
        assert pushed["post"]["author"]["id"] == vic.id
        assert pushed["post"]["text"] == "from node 3"
        # Once each: the old session on node one is not counted twice anywhere.
        assert len(moved.seen("notification", kind("follow"))) == 1
        assert len(moved.seen("notification", kind("like"))) == 1
        assert before.seen("notification") == [] and before.seen("feed:new") == []
    finally:
        await moved.close()
