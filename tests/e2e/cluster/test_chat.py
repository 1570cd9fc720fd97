"""Chat across a three-node cluster: a concurrent burst from members on every node lands in
one RoomActor in the whole cluster, in order and exactly once everywhere; typing and read
receipts cross nodes; a rejoin on another node replays what was missed; membership changed over
REST on one node holds on every node at once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.e2e.cluster.clients import ACK_TIMEOUT, Rest, create_group, new_users
from tests.e2e.live import Live
from tests.support.cluster import HubbubCluster

MEMBERS_PER_NODE = 2
MESSAGES_EACH = 20
DELIVERY_DEADLINE = 30.0


def in_room(room_id: str) -> Any:
    return lambda data: data["message"]["room_id"] == room_id


def seqs(live: Live, room_id: str) -> list[int]:
    return [d["message"]["seq"] for d in live.seen("message:new", in_room(room_id))]


async def stored(cluster: HubbubCluster, room_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(cluster.database_url)
    try:
        return await conn.fetch(
            "SELECT id::text AS id, seq, client_id, sender_id::text AS sender_id "
            "FROM messages WHERE room_id = $1 ORDER BY seq", room_id)
    finally:
        await conn.close()


async def test_a_burst_from_every_node_is_ordered_exactly_once_by_one_room_actor(
        cluster: HubbubCluster, rest: Rest) -> None:
    http = rest.on(0)
    size = len(cluster.nodes)
    members = await new_users(http, MEMBERS_PER_NODE * size, "burst")
    before = await cluster.live_by_node("RoomActor")
    asks_before = await cluster.metric("hubbub_cluster_remote_sent_total", type="ask")
    stored_before = await cluster.metric("hubbub_chat_committed_messages_total")
    commits_before = await cluster.metric("hubbub_chat_commits_total")
    published_before = await cluster.metric("hubbub_room_packets_total", direction="published")
    received_before = await cluster.metric("hubbub_room_packets_total", direction="received")
    room = await create_group(http, members[0], members[1:], "burst")
    lives = [await Live.connect(cluster.url(i // MEMBERS_PER_NODE), m.token)
             for i, m in enumerate(members)]
    try:
        for live in lives:
            await live.ok("room:join", {"room_id": room})

        async def send(k: int, j: int) -> Any:
            return await lives[k].call("message:send", {
                "room_id": room, "client_id": f"burst-{k}-{j}", "text": f"{k}:{j}"},
                timeout=ACK_TIMEOUT)

        acks = await asyncio.gather(*(send(k, j) for j in range(MESSAGES_EACH)
                                      for k in range(len(lives))))
        total = MESSAGES_EACH * len(lives)
        refused = [a for a in acks if not a.get("ok")]
        assert not refused, f"{len(refused)} of {total} sends not acked ok at first: " \
                            f"{refused[:5]}"
        by_seq = {a["message"]["seq"]: a["message"] for a in acks}
        assert sorted(by_seq) == list(range(1, total + 1)), "acked seqs are not 1..n"
        # A marker after the burst: once every member has it, nothing of the burst can
        # still be on its way, so duplicates would show.
        marker = (await lives[0].ok("message:send", {
            "room_id": room, "client_id": "burst-marker", "text": "end"}))["message"]
        assert marker["seq"] == total + 1
        by_seq[marker["seq"]] = marker
        for member, live in zip(members, lives, strict=True):
            await live.expect("message:new", lambda d: d["message"]["seq"] == total + 1,
                              timeout=DELIVERY_DEADLINE)
            got = live.seen("message:new", in_room(room))
            assert [d["message"]["seq"] for d in got] == list(range(1, total + 2)), \
                f"{member.username} got seqs out of order or more than once"
            assert [d["message"] for d in got] == [by_seq[s] for s in range(1, total + 2)]

        rows = await stored(cluster, room)
        assert len(rows) == total + 1
        assert {r["id"] for r in rows} == {m["id"] for m in by_seq.values()}
        assert [r["seq"] for r in rows] == list(range(1, total + 2))
        assert {r["client_id"] for r in rows} == {m["client_id"] for m in by_seq.values()}

        after = await cluster.live_by_node("RoomActor")
        grown = {i: after[i] - before.get(i, 0) for i in after}
        assert sum(grown.values()) == 1 and sorted(grown.values()) == [0] * (size - 1) + [1], \
            f"RoomActors live per node before {before}, after {after}: not one activation"
        # Members on the two other nodes reached it with remote asks.
        asks_after = await cluster.metric("hubbub_cluster_remote_sent_total", type="ask")
        remote_sends = MESSAGES_EACH * MEMBERS_PER_NODE * (size - 1)
        assert sum(asks_after.values()) - sum(asks_before.values()) >= remote_sends
        # The room's node committed every message, sharing commits, and its packets reached
        # each other node once per message.
        owner = next(i for i, n in grown.items() if n == 1)
        stored_now = await cluster.metric("hubbub_chat_committed_messages_total")
        commits_now = await cluster.metric("hubbub_chat_commits_total")
        assert {i: stored_now[i] - stored_before[i] for i in stored_now} == \
            {i: total + 1 if i == owner else 0 for i in stored_now}
        assert 1 <= commits_now[owner] - commits_before[owner] <= total + 1
        published = await cluster.metric("hubbub_room_packets_total", direction="published")
        received = await cluster.metric("hubbub_room_packets_total", direction="received")
        assert published[owner] - published_before[owner] >= total + 1
        for i in received:
            if i != owner:
                assert received[i] - received_before[i] >= total + 1, f"node {i}"
    finally:
        for live in lives:
            await live.close()


async def test_b_typing_and_read_receipts_cross_nodes_and_a_rejoin_replays(
        cluster: HubbubCluster, rest: Rest) -> None:
    ann, bob, cat = await new_users(rest.on(1), 3, "rcpt")
    room = await create_group(rest.on(1), ann, [bob, cat], "receipts")
    a = await Live.connect(cluster.url(0), ann.token)
    b = await Live.connect(cluster.url(1), bob.token)
    c = await Live.connect(cluster.url(2), cat.token)
    try:
        for live in (a, b, c):
            await live.ok("room:join", {"room_id": room})
        await a.ok("typing", {"room_id": room, "active": True})
        for live in (b, c):
            assert await live.expect("typing") == {"room_id": room, "user_id": ann.id,
                                                   "active": True}
        sent = [(await a.ok("message:send", {"room_id": room, "client_id": f"a{i}",
                                             "text": f"hello {i}"}))["message"]
                for i in range(3)]
        assert [m["seq"] for m in sent] == [1, 2, 3]
        for live in (b, c):  # sending ended ann's typing, everywhere
            assert await live.expect("typing") == {"room_id": room, "user_id": ann.id,
                                                   "active": False}
            got = await live.collect("message:new", 3, in_room(room))
            assert [d["message"] for d in got] == sent

        await b.ok("message:read", {"room_id": room, "seq": 3})
        for live in (a, c):
            assert await live.expect("message:read") == {"room_id": room, "user_id": bob.id,
                                                         "seq": 3}
        await c.ok("message:read", {"room_id": room, "seq": 2})
        for live in (a, b):
            assert await live.expect("message:read", lambda d: d["user_id"] == cat.id) == \
                {"room_id": room, "user_id": cat.id, "seq": 2}

        last_seen = max(seqs(c, room))
        await c.close()
        away = [(await who.ok("message:send", {"room_id": room, "client_id": f"away{i}",
                                               "text": f"while cat is away {i}"}))["message"]
                for i, who in enumerate((a, b, a, b))]
        await b.ok("typing", {"room_id": room, "active": True})
        assert (await a.expect("typing", lambda d: d["user_id"] == bob.id))["active"] is True

        # Cat comes back on another node and asks for what it missed.
        c = await Live.connect(cluster.url(0), cat.token)
        joined = await c.ok("room:join", {"room_id": room, "since_seq": last_seen})
        assert joined["last_seq"] == 7
        assert joined["missed"] == away
        await c.ok("message:read", {"room_id": room, "seq": 7})
        for live in (a, b):
            assert await live.expect("message:read", lambda d: d["user_id"] == cat.id) == \
                {"room_id": room, "user_id": cat.id, "seq": 7}
    finally:
        for live in (a, b, c):
            await live.close()


async def test_c_membership_changed_over_rest_holds_on_every_node_at_once(
        cluster: HubbubCluster, rest: Rest) -> None:
    node_a, node_b, node_c = 0, 1, 2
    http = rest.on(node_a)
    ann, bob, cat, dan = await new_users(http, 4, "mship")
    room = await create_group(http, ann, [bob, cat], "membership")
    a = await Live.connect(cluster.url(node_a), ann.token)
    b = await Live.connect(cluster.url(node_c), bob.token)
    c = await Live.connect(cluster.url(node_c), cat.token)
    d = await Live.connect(cluster.url(node_b), dan.token)
    try:
        for live in (a, b, c):
            await live.ok("room:join", {"room_id": room})
        outsider = await d.call("room:join", {"room_id": room})
        assert outsider["ok"] is False and outsider["error"]["code"] == "not_member"
        await b.ok("message:send", {"room_id": room, "client_id": "b-before", "text": "hi"})

        async with http.delete(f"/v1/rooms/{room}/members", headers=ann.auth,
                               json={"user_ids": [bob.id]}) as response:
            assert response.status == 204, await response.text()
        # Right after the REST call returned, on another node:
        for event, payload in (
                ("message:send", {"room_id": room, "client_id": "b-after", "text": "hey"}),
                ("room:join", {"room_id": room}),
                ("message:read", {"room_id": room, "seq": 1})):
            refused = await b.call(event, payload)
            assert refused["ok"] is False and refused["error"]["code"] == "not_member", \
                (event, refused)
        after = (await a.ok("message:send", {"room_id": room, "client_id": "a-after",
                                             "text": "without bob"}))["message"]
        assert (await c.expect("message:new", lambda m: m["message"]["seq"] == after["seq"]))[
            "message"] == after
        # Cat's socket is on bob's node and has it; bob's ack below was queued behind any
        # message:new that node would have sent him.
        await b.call("message:send", {"room_id": room, "client_id": "b-late", "text": "x"})
        assert after["seq"] not in seqs(b, room), "a removed member still got the room"

        async with http.post(f"/v1/rooms/{room}/members", headers=ann.auth,
                             json={"user_ids": [dan.id]}) as response:
            assert response.status == 200, await response.text()
        joined = await d.ok("room:join", {"room_id": room})
        assert joined["last_seq"] == after["seq"]
        hello = (await d.ok("message:send", {"room_id": room, "client_id": "d-1",
                                             "text": "hello, I am new"}))["message"]
        assert hello["seq"] == after["seq"] + 1 and hello["sender_id"] == dan.id
        for live in (a, c, d):
            assert (await live.expect("message:new",
                                      lambda m: m["message"]["seq"] == hello["seq"]))[
                "message"] == hello
    finally:
        for live in (a, b, c, d):
            await live.close()
