"""Chat over REST against a real server: rooms, members, history, and messages that go through
the RoomActor (next seq, live on sockets, notifications for members who are offline)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from protocols.ids import new_id
from server.http.cursors import encode_cursor
from tests.e2e.live import Account, Live, signup
from tests.support.server import HubbubProcess


async def call(http: aiohttp.ClientSession, method: str, path: str, who: Account,
               status: int, **kwargs: Any) -> Any:
    async with http.request(method, path, headers={**who.auth, **kwargs.pop("headers", {})},
                            **kwargs) as response:
        assert response.status == status, await response.text()
        if response.status == 204:
            return None
        return await response.json(content_type=None)


async def accounts(http: aiohttp.ClientSession, n: int, prefix: str) -> list[Account]:
    return [await signup(http, prefix) for _ in range(n)]


async def new_room(http: aiohttp.ClientSession, who: Account, kind: str, *members: Account,
                   status: int = 201, **extra: Any) -> dict[str, Any]:
    return await call(http, "POST", "/v1/rooms", who, status,
                      json={"kind": kind, "member_ids": [m.id for m in members], **extra})


async def post(http: aiohttp.ClientSession, who: Account, room_id: str, text: str,
               client_id: str | None = None, status: int = 201, **kwargs: Any) -> Any:
    return await call(http, "POST", f"/v1/rooms/{room_id}/messages", who, status,
                      json={"text": text, "client_id": client_id or uuid.uuid4().hex}, **kwargs)


async def test_a_direct_room_is_returned_not_duplicated(http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "dm"), await signup(http, "dm")
    room = await new_room(http, ann, "direct", bob)
    assert room["kind"] == "direct" and sorted(room["member_ids"]) == sorted([ann.id, bob.id])
    assert room["last_seq"] == 0 and room["last_message"] is None
    again = await new_room(http, ann, "direct", bob, status=200)
    theirs = await new_room(http, bob, "direct", ann, status=200)
    assert again["id"] == theirs["id"] == room["id"]


async def test_bad_room_requests_are_clear_problems(http: aiohttp.ClientSession) -> None:
    ann, bob, cat = await accounts(http, 3, "bad")
    unknown = await call(http, "POST", "/v1/rooms", ann, 422,
                         json={"kind": "group", "member_ids": [new_id()]})
    assert unknown["errors"][0]["field"] == "member_ids"
    await call(http, "POST", "/v1/rooms", ann, 422, json={"kind": "direct",
                                                          "member_ids": [bob.id, cat.id]})
    await call(http, "POST", "/v1/rooms", ann, 422, json={"kind": "party",
                                                          "member_ids": [bob.id]})
    await call(http, "POST", f"/v1/users/{bob.id}/block", cat, 200)  # cat blocks bob
    for me, other in ((cat, bob), (bob, cat)):
        hidden = await call(http, "POST", "/v1/rooms", me, 404,
                            json={"kind": "direct", "member_ids": [other.id]})
        assert hidden["code"] == "user_not_found"
    blocked = await call(http, "POST", "/v1/rooms", ann, 403,
                         json={"kind": "group", "member_ids": [bob.id, cat.id]})
    assert blocked["code"] == "blocked_member"
    for room_id in (new_id(), "not-an-id"):
        await call(http, "GET", f"/v1/rooms/{room_id}", ann, 404)
        await post(http, ann, room_id, "hello?", status=404)


async def test_a_group_and_its_members(http: aiohttp.ClientSession) -> None:
    ann, bob, cat, eve = await accounts(http, 4, "grp")
    room = await new_room(http, ann, "group", bob, name="Team")
    assert room["name"] == "Team" and room["member_ids"] == [ann.id, bob.id]
    path = f"/v1/rooms/{room['id']}"
    assert (await call(http, "GET", path, bob, 200))["id"] == room["id"]
    assert (await call(http, "GET", path, eve, 404))["code"] == "room_not_found"
    denied = await call(http, "POST", f"{path}/members", bob, 403, json={"user_ids": [cat.id]})
    assert denied["code"] == "not_owner"
    grown = await call(http, "POST", f"{path}/members", ann, 200, json={"user_ids": [cat.id]})
    assert grown["member_ids"] == [ann.id, bob.id, cat.id]
    await call(http, "DELETE", f"{path}/members", bob, 403, json={"user_ids": [cat.id]})
    await call(http, "DELETE", f"{path}/members", bob, 204, json={"user_ids": [bob.id]})
    await call(http, "GET", path, bob, 404)
    # A removed member can no longer send: the RoomActor was told its members changed.
    await post(http, bob, room["id"], "still here?", status=404)
    await post(http, cat, room["id"], "welcome", status=201)


async def test_messages_over_rest_get_seqs_and_history_is_consistent(
        http: aiohttp.ClientSession) -> None:
    ann, bob, eve = await accounts(http, 3, "hist")
    room = await new_room(http, ann, "group", bob)
    sent = [await post(http, ann if i % 2 else bob, room["id"], f"message {i}")
            for i in range(6)]
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5, 6]
    assert set(sent[0]) >= {"id", "room_id", "seq", "sender_id", "text", "client_id",
                            "created_at"}
    history = f"/v1/rooms/{room['id']}/messages"
    page = await call(http, "GET", history, ann, 200)
    assert page["items"] == sent and page["next_cursor"] is None
    newest = await call(http, "GET", f"{history}?limit=4", ann, 200)
    assert [m["seq"] for m in newest["items"]] == [3, 4, 5, 6]
    older = await call(http, "GET", f"{history}?limit=4&cursor={newest['next_cursor']}",
                       ann, 200)
    assert [m["seq"] for m in older["items"]] == [1, 2] and older["next_cursor"] is None
    after = await call(http, "GET", f"{history}?after_seq=4", ann, 200)
    assert after["items"] == sent[4:]
    before = await call(http, "GET", f"{history}?before_seq=3", ann, 200)
    assert before["items"] == sent[:2]
    await call(http, "GET", f"{history}?limit=0", ann, 422)
    await call(http, "GET", history, eve, 404)
    await post(http, eve, room["id"], "let me in", status=404)

    # The room list shows the last message and what each member has not read.
    rooms = await call(http, "GET", "/v1/rooms", bob, 200)
    listed = next(r for r in rooms["items"] if r["id"] == room["id"])
    assert listed["last_message"] == sent[-1] and listed["last_seq"] == 6
    assert listed["unread_count"] == 1  # bob sent seq 5, which read everything before


async def test_resends_are_idempotent_by_client_id_and_idempotency_key(
        http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "idem"), await signup(http, "idem")
    room = await new_room(http, ann, "direct", bob)
    first = await post(http, ann, room["id"], "once", client_id="c-1")
    results = await asyncio.gather(*(post(http, ann, room["id"], "once", client_id="c-1")
                                     for _ in range(5)))
    assert all(r == first for r in results)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    keyed = await post(http, ann, room["id"], "keyed", client_id="c-2", headers=key)
    async with http.post(f"/v1/rooms/{room['id']}/messages", headers={**ann.auth, **key},
                         json={"text": "keyed", "client_id": "c-2"}) as replay:
        assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
        assert await replay.json() == keyed
    reused = await post(http, ann, room["id"], "other", client_id="c-3", status=422,
                        headers=key)
    assert reused["code"] == "idempotency_key_reused"
    page = await call(http, "GET", f"/v1/rooms/{room['id']}/messages", ann, 200)
    assert [m["seq"] for m in page["items"]] == [1, 2]


async def test_a_message_sent_over_rest_arrives_live_and_notifies_the_offline(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, cat = await accounts(http, 3, "live")
    room = await new_room(http, ann, "group", bob, cat)
    bob_live = await Live.connect(hubbub.base_url, bob.token)
    try:
        joined = await bob_live.ok("room:join", {"room_id": room["id"], "since_seq": 0})
        assert joined["last_seq"] == 0 and joined["missed"] == []
        message = await post(http, ann, room["id"], "over REST")
        pushed = await bob_live.expect("message:new",
                                       lambda e: e["message"]["room_id"] == room["id"])
        assert pushed == {"message": message}
    finally:
        await bob_live.close()
    # cat has no socket: the message became a `message` notification for cat (not bob).
    listed = await call(http, "GET", "/v1/notifications", cat, 200)
    [note] = [n for n in listed["items"] if n["kind"] == "message"]
    assert note["actor"]["id"] == ann.id
    assert note["data"]["room_id"] == room["id"] and note["data"]["seq"] == message["seq"]
    bobs = await call(http, "GET", "/v1/notifications", bob, 200)
    assert [n for n in bobs["items"] if n["kind"] == "message"] == []


async def test_rooms_logged_no_warnings_or_errors(hubbub: HubbubProcess,
                                                  http: aiohttp.ClientSession) -> None:
    ann, bob = await accounts(http, 2, "quiet")
    room = await new_room(http, ann, "direct", bob)
    await post(http, ann, room["id"], "hello")
    # RoomActor's own logger, and the runtime's crash reports naming a RoomActor.
    troubles = [line for line in hubbub.logs()
                if line.get("logger", "").startswith("hubbub.actors")
                and "RoomActor" in str(line)
                and line.get("level") in ("warning", "error", "critical")]
    assert troubles == [], json.dumps(troubles, indent=1)


async def test_a_removed_member_stops_receiving_the_room_live(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, cat = await accounts(http, 3, "evict")
    room = await new_room(http, ann, "group", bob, cat)
    bob_live = await Live.connect(hubbub.base_url, bob.token)
    cat_live = await Live.connect(hubbub.base_url, cat.token)
    try:
        for live in (bob_live, cat_live):
            await live.ok("room:join", {"room_id": room["id"]})
        before = await post(http, ann, room["id"], "before")
        await bob_live.expect("message:new", lambda e: e["message"]["id"] == before["id"])
        await call(http, "DELETE", f"/v1/rooms/{room['id']}/members", ann, 204,
                   json={"user_ids": [bob.id]})
        after = await post(http, ann, room["id"], "after")
        await cat_live.expect("message:new", lambda e: e["message"]["id"] == after["id"])
        # Each socket gets frames in order: had bob still been in the room, "after" would
        # have reached him before the answer to a call he makes once cat has it.
        refused = await bob_live.call("room:join", {"room_id": room["id"]})
        assert refused["ok"] is False and refused["error"]["code"] == "not_member"
        assert [e["message"]["seq"] for e in bob_live.seen("message:new")] == [before["seq"]]
    finally:
        await bob_live.close()
        await cat_live.close()


async def test_text_postgres_cannot_store_is_refused_and_the_room_keeps_working(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    """Issue 9: a NUL in a message crashed the RoomActor on every try (REST 503
    room_unavailable, socket `internal`) and a NUL in a room name was a 500. Both are refused
    while decoding now, and the room goes on taking messages."""
    ann, bob = await accounts(http, 2, "nul")
    named = await new_room(http, ann, "group", bob, status=422, name="a\u0000b")
    assert [e["field"] for e in named["errors"]] == ["name"]
    room = await new_room(http, ann, "group", bob)
    for _ in range(2):  # the same answer every time: nothing crashed in between
        refused = await post(http, ann, room["id"], "nul\u0000byte", status=422)
        assert refused["code"] == "invalid" and [e["field"] for e in refused["errors"]] == [
            "text"]
        assert "NUL" in refused["errors"][0]["message"]
    assert (await post(http, ann, room["id"], "after the NUL"))["seq"] == 1

    live = await Live.connect(hubbub.base_url, bob.token)
    try:
        await live.ok("room:join", {"room_id": room["id"]})
        ack = await live.call("message:send", {"room_id": room["id"], "client_id": "n-1",
                                               "text": "nul\u0000byte"})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
        assert ack["error"]["message"].startswith("text: ")
        ack = await live.call("message:send", {"room_id": room["id"], "client_id": "n-2",
                                               "text": "lone \ud800 surrogate"})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
        sent = await live.ok("message:send", {"room_id": room["id"], "client_id": "n-3",
                                              "text": "fine"})
        assert sent["message"]["seq"] == 2
    finally:
        await live.close()
    troubles = [line for line in hubbub.logs() if room["id"] in str(line)
                and line.get("level") in ("error", "critical")]
    assert troubles == [], json.dumps(troubles, indent=1)


async def test_history_seqs_beyond_int64_are_422_not_500(http: aiohttp.ClientSession) -> None:
    ann, bob = await accounts(http, 2, "big")
    room = await new_room(http, ann, "direct", bob)
    history = f"/v1/rooms/{room['id']}/messages"
    for query in (f"after_seq={2**63}", f"before_seq={2**64}", f"after_seq={10**30}"):
        problem = await call(http, "GET", f"{history}?{query}", ann, 422)
        assert [e["field"] for e in problem["errors"]] == [query.split("=")[0]]
        assert "at most 9223372036854775807" in problem["errors"][0]["message"]
    both = await call(http, "GET", f"{history}?after_seq=-1&before_seq=0&limit=101", ann, 422)
    assert [e["field"] for e in both["errors"]] == ["before_seq", "after_seq", "limit"]
    # A forged cursor with a seq past int64 is an invalid cursor, not a 500.
    forged = encode_cursor(("a", 2**63, 0))
    problem = await call(http, "GET", f"{history}?cursor={forged}", ann, 400)
    assert problem["code"] == "invalid_cursor"
    assert (await call(http, "GET", f"{history}?after_seq={2**63 - 1}", ann, 200))[
        "items"] == []
