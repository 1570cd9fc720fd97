"""Presence over Socket.IO: subscriptions (only users one may see), online / away / dnd as
they happen, and offline with last_seen_at after the grace period."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import redis.asyncio as redis

from protocols.ids import new_id
from tests.e2e.live import Live, signup
from tests.support.polling import eventually
from tests.support.server import HubbubProcess


def _grace(hubbub: HubbubProcess) -> float:
    return float(hubbub.env.get("PRESENCE_GRACE_SECONDS") or 10)


async def test_presence_changes_reach_subscribers(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "watcher"), await signup(http, "watched")
    watcher = await Live.connect(hubbub.base_url, ann.token)
    ack = await watcher.ok("presence:subscribe", {"user_ids": [bob.id]})
    assert ack["presence"] == [{"user_id": bob.id, "status": "offline", "last_seen_at": None}]

    phone = await Live.connect(hubbub.base_url, bob.token)
    online = await watcher.expect("presence", lambda p: p["user_id"] == bob.id)
    assert online == {"user_id": bob.id, "status": "online", "last_seen_at": None}

    assert (await phone.ok("presence:set", {"status": "away"}))["presence"]["status"] == "away"
    await watcher.expect("presence", lambda p: p["status"] == "away")
    await phone.ok("presence:set", {"status": "dnd"})
    await watcher.expect("presence", lambda p: p["status"] == "dnd")
    # A second device neither flaps nor resets the chosen status.
    laptop = await Live.connect(hubbub.base_url, bob.token)
    await phone.close()
    again = await watcher.ok("presence:subscribe", {"user_ids": [bob.id]})
    assert again["presence"][0]["status"] == "dnd"

    await laptop.close()
    closed_at = datetime.now().timestamp()
    offline = await watcher.expect("presence", lambda p: p["status"] == "offline",
                                   timeout=_grace(hubbub) + 10)
    assert offline["user_id"] == bob.id
    assert abs(datetime.fromisoformat(offline["last_seen_at"]).timestamp() - closed_at) < 5
    statuses = [p["status"] for p in watcher.seen("presence")]
    assert statuses == ["online", "away", "dnd", "offline"]
    await watcher.close()


async def test_only_users_one_may_see_are_subscribed(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, cat = [await signup(http, "vis") for _ in range(3)]
    async with http.post(f"/v1/users/{cat.id}/block", headers=ann.auth) as response:
        assert response.status in (200, 201, 204), await response.text()
    ann_live = await Live.connect(hubbub.base_url, ann.token)
    cat_live = await Live.connect(hubbub.base_url, cat.token)
    ack = await ann_live.ok("presence:subscribe",
                            {"user_ids": [bob.id, cat.id, new_id(), bob.id.upper()]})
    assert [p["user_id"] for p in ack["presence"]] == [bob.id]
    ack = await cat_live.ok("presence:subscribe", {"user_ids": [ann.id]})
    assert ack["presence"] == []
    # Neither hears about the other: cat's own change is not pushed to ann.
    await cat_live.ok("presence:set", {"status": "away"})
    bob_live = await Live.connect(hubbub.base_url, bob.token)
    await ann_live.expect("presence", lambda p: p["user_id"] == bob.id)
    assert [p["user_id"] for p in ann_live.seen("presence")] == [bob.id]

    bad = await ann_live.call("presence:subscribe", {"user_ids": ["nope"]})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid"
    for live in (ann_live, cat_live, bob_live):
        await live.close()


async def test_each_socket_is_recorded_by_its_node_while_connected(
        hubbub: HubbubProcess, http: aiohttp.ClientSession, redis_client: redis.Redis) -> None:
    ann = await signup(http, "recorded")
    prefix = hubbub.env["REDIS_KEY_PREFIX"]
    sessions_key = f"{prefix}sessions:{ann.id}"
    live = await Live.connect(hubbub.base_url, ann.token)
    # The connect handler records the socket before the client is told it is connected.
    recorded = await redis_client.hgetall(sessions_key)
    assert list(recorded) == [live.client.get_sid("/").encode()]
    node = next(iter(recorded.values())).decode()
    assert await redis_client.sismember(f"{prefix}node-users:{node}", ann.id)
    assert 0 < await redis_client.ttl(sessions_key) <= 7 * 24 * 3600

    await live.close()

    async def forgotten() -> bool:
        return not await redis_client.exists(sessions_key)

    # The server runs its disconnect handler after the client hung up: nothing to await.
    await eventually(forgotten, 10, "the closed socket's session record to go")
    assert not await redis_client.sismember(f"{prefix}node-users:{node}", ann.id)
