"""Chat over Socket.IO with real python-socketio clients: direct and group rooms, typing,
read receipts, catching up with since_seq, membership checks, and garbage that does not
disturb anybody else."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from tests.e2e.live import Account, Live, signup
from tests.support.server import HubbubProcess


async def create_room(http: aiohttp.ClientSession, owner: Account, kind: str,
                      members: list[Account], name: str | None = None) -> str:
    body: dict[str, Any] = {"kind": kind, "member_ids": [m.id for m in members]}
    if name:
        body["name"] = name
    async with http.post("/v1/rooms", json=body, headers=owner.auth) as response:
        assert response.status in (200, 201), await response.text()
        return (await response.json())["id"]


async def send(live: Live, room_id: str, text: str, client_id: str | None = None) -> dict:
    ack = await live.ok("message:send", {"room_id": room_id, "text": text,
                                         "client_id": client_id or uuid.uuid4().hex})
    return ack["message"]


def in_room(room_id: str) -> Any:
    return lambda data: data["message"]["room_id"] == room_id


async def test_two_users_chat_in_a_direct_room_with_typing_and_receipts(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "dm_a"), await signup(http, "dm_b")
    room = await create_room(http, ann, "direct", [bob])
    a, b = await Live.connect(hubbub.base_url, ann.token), \
        await Live.connect(hubbub.base_url, bob.token)
    assert await a.ok("room:join", {"room_id": room}) == {"ok": True, "last_seq": 0,
                                                          "missed": []}
    await b.ok("room:join", {"room_id": room.upper()})  # any case names the same room

    await a.ok("typing", {"room_id": room, "active": True})
    assert await b.expect("typing") == {"room_id": room, "user_id": ann.id, "active": True}

    first = await send(a, room, "hi bob", client_id="ann-1")
    assert (first["seq"], first["sender_id"], first["text"]) == (1, ann.id, "hi bob")
    assert (await b.expect("message:new", in_room(room)))["message"] == first
    # Sending ends "typing" for the others.
    assert await b.expect("typing") == {"room_id": room, "user_id": ann.id, "active": False}

    reply = await send(b, room, "hi ann")
    assert reply["seq"] == 2
    assert (await a.expect("message:new", lambda d: d["message"]["seq"] == 2))["message"] == \
        reply

    # A resend with the same client_id returns the first message and creates nothing.
    assert await send(a, room, "hi bob", client_id="ann-1") == first

    # A sender has read up to their own message; ann reading bob's reply is a receipt.
    await a.ok("message:read", {"room_id": room, "seq": 2})
    assert await b.expect("message:read") == {"room_id": room, "user_id": ann.id, "seq": 2}

    third = await send(a, room, "bye")
    assert third["seq"] == 3
    await b.expect("message:new", lambda d: d["message"]["seq"] == 3)
    assert [d["message"]["seq"] for d in b.seen("message:new")] == [1, 2, 3]
    for live in (a, b):
        await live.close()


async def test_group_room_and_a_message_sent_over_rest_arrives_live(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    owner = await signup(http, "grp_o")
    others = [await signup(http, "grp_m") for _ in range(3)]
    room = await create_room(http, owner, "group", others, name="the group")
    lives = [await Live.connect(hubbub.base_url, acct.token) for acct in [owner, *others]]
    for live in lives:
        await live.ok("room:join", {"room_id": room})

    for seq, (sender, live) in enumerate(zip([owner, *others], lives, strict=True), start=1):
        message = await send(live, room, f"hello from {sender.username}")
        assert message["seq"] == seq
    async with http.post(f"/v1/rooms/{room}/messages", headers=owner.auth,
                         json={"text": "over REST", "client_id": "rest-1"}) as response:
        assert response.status == 201, await response.text()
        rest = await response.json()
    assert rest["seq"] == 5
    for live in lives:
        got = await live.collect("message:new", 5, in_room(room))
        assert [d["message"]["seq"] for d in got] == [1, 2, 3, 4, 5]
        assert got[-1]["message"] == rest
    await lives[1].ok("typing", {"room_id": room, "active": True})
    for live in (lives[0], lives[2], lives[3]):
        notice = await live.expect("typing", lambda d: d["active"])
        assert notice["user_id"] == others[0].id
    for live in lives:
        await live.close()


async def test_rejoining_with_since_seq_returns_exactly_what_was_missed(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "miss_a"), await signup(http, "miss_b")
    room = await create_room(http, ann, "direct", [bob])
    a = await Live.connect(hubbub.base_url, ann.token)
    b = await Live.connect(hubbub.base_url, bob.token)
    for live in (a, b):
        await live.ok("room:join", {"room_id": room})
    for i in range(3):
        await send(a, room, f"before {i}")
    await b.collect("message:new", 3, in_room(room))
    last_seen = max(d["message"]["seq"] for d in b.seen("message:new"))
    await b.close()

    sent = [await send(a, room, f"while away {i}") for i in range(4)]
    b = await Live.connect(hubbub.base_url, bob.token)
    ack = await b.ok("room:join", {"room_id": room, "since_seq": last_seen})
    assert ack["last_seq"] == 7
    assert ack["missed"] == sent
    assert [m["seq"] for m in ack["missed"]] == [4, 5, 6, 7]
    # Caught up, and live again.
    after = await send(a, room, "welcome back")
    assert (await b.expect("message:new", in_room(room)))["message"] == after
    assert (await b.ok("room:join", {"room_id": room, "since_seq": 7}))["missed"] == [after]
    for live in (a, b):
        await live.close()


async def test_a_non_member_cannot_join_read_send_or_listen(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, eve = (await signup(http, "nm_a"), await signup(http, "nm_b"),
                     await signup(http, "nm_e"))
    room = await create_room(http, ann, "direct", [bob])
    a = await Live.connect(hubbub.base_url, ann.token)
    e = await Live.connect(hubbub.base_url, eve.token)
    await a.ok("room:join", {"room_id": room})

    joined = await e.call("room:join", {"room_id": room, "since_seq": 0})
    assert joined["ok"] is False and joined["error"]["code"] == "not_member"
    sent = await e.call("message:send", {"room_id": room, "text": "let me in",
                                         "client_id": "eve-1"})
    assert sent["ok"] is False and sent["error"]["code"] == "not_member"
    read = await e.call("message:read", {"room_id": room, "seq": 1})
    assert read["ok"] is False and read["error"]["code"] == "not_member"
    typed = await e.call("typing", {"room_id": room, "active": True})
    assert typed["ok"] is False and typed["error"]["code"] == "not_joined"
    # A room that does not exist answers the same: nothing tells eve which rooms exist.
    nowhere = await e.call("room:join", {"room_id": str(uuid.uuid4())})
    assert nowhere["error"]["code"] == "not_member"

    message = await send(a, room, "private")
    assert message["seq"] == 1  # eve's attempt created nothing
    # A marker eve does receive: her own user room. Nothing from the private room came first.
    await e.ok("presence:set", {"status": "away"})
    await e.ok("presence:subscribe", {"user_ids": [eve.id]})
    assert e.seen("message:new") == [] and e.seen("typing") == []
    for live in (a, e):
        await live.close()


async def test_garbage_from_one_client_does_not_disturb_another_pair(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, mal = (await signup(http, "gp_a"), await signup(http, "gp_b"),
                     await signup(http, "gp_m"))
    room = await create_room(http, ann, "direct", [bob])
    a = await Live.connect(hubbub.base_url, ann.token)
    b = await Live.connect(hubbub.base_url, bob.token)
    m = await Live.connect(hubbub.base_url, mal.token)
    for live in (a, b):
        await live.ok("room:join", {"room_id": room})

    garbage: list[tuple[str, Any]] = [
        ("message:send", {"room_id": room, "text": 5, "client_id": []}),
        ("room:join", "💥"), ("room:join", [None]), ("typing", {"active": True}),
        ("message:send", {"room_id": room, "text": "x", "client_id": "c", "extra": 1}),
        ("whatever", None), ("message:read", {"room_id": room, "seq": "NaN"}),
    ]

    async def spam() -> list[dict]:
        acks = []
        for _ in range(3):
            for event, payload in garbage:
                acks.append(await m.call(event, payload))
        return acks

    async def chat() -> list[dict]:
        return [await send(a if i % 2 == 0 else b, room, f"msg {i}") for i in range(20)]

    spam_acks, messages = await asyncio.gather(spam(), chat())
    assert all(ack["ok"] is False for ack in spam_acks)
    assert {ack["error"]["code"] for ack in spam_acks} <= {"invalid", "rate_limited"}
    assert [msg["seq"] for msg in messages] == list(range(1, 21))
    for live in (a, b):
        got = await live.collect("message:new", 20, in_room(room))
        assert [d["message"]["seq"] for d in got] == list(range(1, 21))
    assert m.client.connected
    for live in (a, b, m):
        await live.close()


async def test_a_removed_member_stops_receiving_the_room(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    owner, bob, cat = (await signup(http, "rm_o"), await signup(http, "rm_b"),
                       await signup(http, "rm_c"))
    room = await create_room(http, owner, "group", [bob, cat], name="shrinking")
    lives = [await Live.connect(hubbub.base_url, a.token) for a in (owner, bob, cat)]
    for live in lives:
        await live.ok("room:join", {"room_id": room})
    await send(lives[0], room, "all three of us")
    for live in lives:
        await live.expect("message:new", in_room(room))
    async with http.delete(f"/v1/rooms/{room}/members", headers=owner.auth,
                           json={"user_ids": [bob.id]}) as response:
        assert response.status == 204, await response.text()
    after = await send(lives[0], room, "just us two")
    assert (await lives[2].expect("message:new", in_room(room)))["message"] == after
    refused = await lives[1].call("message:send", {"room_id": room, "text": "hey",
                                                   "client_id": "b-1"})
    assert refused["error"]["code"] == "not_member"
    # "just us two" was emitted before its send was acked, so before bob's refusal was
    # answered: had it been sent to bob's socket, it would have arrived ahead of that ack.
    assert [d["message"]["seq"] for d in lives[1].seen("message:new")] == [1]
    for live in lives:
        await live.close()
