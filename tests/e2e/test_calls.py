"""Calls over Socket.IO with real python-socketio clients against `hubbub serve`: signaling
only between participants, busy, several devices, cancel on disconnect, the call record, the
room's system message, ring timeout with call_missed, and ICE servers with TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.conftest import sibling_server
from tests.e2e.live import Account, Live, signup
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

TURN_SECRET = "turn-" + uuid.uuid4().hex
OFFER = {"type": "offer", "sdp": "v=0\r\n"}


def of(call_id: str) -> Any:
    return lambda data: data["call_id"] == call_id


async def get(http: aiohttp.ClientSession, path: str, who: Account, status: int = 200) -> Any:
    async with http.get(path, headers=who.auth) as response:
        assert response.status == status, await response.text()
        return await response.json(content_type=None)


@pytest_asyncio.fixture
async def sockets(hubbub: HubbubProcess) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:
        async def connect(who: Account, base_url: str = hubbub.base_url) -> Live:
            live = await Live.connect(base_url, who.token)
            stack.push_async_callback(live.close)
            return live
        yield connect


async def ring(caller: Live, callee_live: Live, callee: Account) -> str:
    ack = await caller.ok("call:invite", {"user_ids": [callee.id], "media": "audio"})
    await callee_live.expect("call:incoming", of(ack["call_id"]))
    return ack["call_id"]


async def test_outsider_signal_is_refused_and_never_delivered(
        http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob, eve = [await signup(http, p) for p in ("cs_a", "cs_b", "cs_e")]
    a, b, e = await sockets(ann), await sockets(bob), await sockets(eve)
    call_id = await ring(a, b, bob)
    # Before bob accepts, not even the caller may signal him.
    early = await a.call("call:signal", {"call_id": call_id, "to_user_id": bob.id,
                                         "kind": "offer", "payload": OFFER})
    assert early["ok"] is False and early["error"]["code"] == "not_participant"
    await b.ok("call:accept", {"call_id": call_id})
    await a.expect("call:accepted", of(call_id))
    for target in (bob, ann):
        refused = await e.call("call:signal", {"call_id": call_id, "to_user_id": target.id,
                                               "kind": "ice", "payload": {"candidate": "evil"}})
        assert refused["ok"] is False and refused["error"]["code"] == "not_participant"
    too_big = await a.call("call:signal", {"call_id": call_id, "to_user_id": bob.id,
                                           "kind": "offer", "payload": {"sdp": "x" * 17_000}})
    assert too_big["ok"] is False and too_big["error"]["code"] == "too_large"
    await a.ok("call:signal", {"call_id": call_id, "to_user_id": bob.id, "kind": "offer",
                               "payload": OFFER})
    # The legitimate offer arrives; anything refused before it would have arrived first.
    got = await b.expect("call:signal", of(call_id))
    assert got == {"call_id": call_id, "from_user_id": ann.id, "kind": "offer", "payload": OFFER}
    assert b.seen("call:signal") == [got] and a.seen("call:signal") == []
    await a.ok("call:hangup", {"call_id": call_id})
    await b.expect("call:ended", lambda d: d == {"call_id": call_id, "reason": "hangup"})


async def test_busy_callee_is_reported(http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob, cat = [await signup(http, p) for p in ("cb_a", "cb_b", "cb_c")]
    a, b, c = await sockets(ann), await sockets(bob), await sockets(cat)
    call_id = await ring(a, b, bob)
    await b.ok("call:accept", {"call_id": call_id})
    busy = await c.call("call:invite", {"user_ids": [bob.id], "media": "video"})
    assert busy["ok"] is False and busy["error"]["code"] == "busy"
    assert b.seen("call:incoming") and len(b.seen("call:incoming")) == 1
    await b.ok("call:hangup", {"call_id": call_id})
    await a.expect("call:ended", of(call_id))
    # Free again.
    again = await c.ok("call:invite", {"user_ids": [bob.id], "media": "video"})
    await b.expect("call:incoming", of(again["call_id"]))
    await c.ok("call:hangup", {"call_id": again["call_id"]})


async def test_first_device_wins_and_the_other_hears_answered_elsewhere(
        http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob = await signup(http, "cd_a"), await signup(http, "cd_b")
    a, phone, laptop = await sockets(ann), await sockets(bob), await sockets(bob)
    call_id = await ring(a, phone, bob)
    await laptop.expect("call:incoming", of(call_id))
    await phone.ok("call:accept", {"call_id": call_id})
    ended = await laptop.expect("call:ended", of(call_id))
    assert ended["reason"] == "answered_elsewhere"
    late = await laptop.call("call:accept", {"call_id": call_id})
    assert late["ok"] is False and late["error"]["code"] == "answered_elsewhere"
    assert phone.seen("call:ended") == []
    await a.ok("call:hangup", {"call_id": call_id})


async def test_caller_disconnecting_cancels_the_call(
        http: aiohttp.ClientSession, sockets: Any, hubbub: HubbubProcess) -> None:
    ann, bob = await signup(http, "cx_a"), await signup(http, "cx_b")
    a, b = await Live.connect(hubbub.base_url, ann.token), await sockets(bob)
    call_id = await ring(a, b, bob)
    await a.close()
    ended = await b.expect("call:ended", of(call_id))
    assert ended["reason"] == "cancelled"
    record = await get(http, f"/v1/calls/{call_id}", bob)
    assert record["state"] == "ended" and record["end_reason"] == "cancelled"


async def test_a_finished_call_is_recorded_and_in_the_room_history(
        http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob, eve = [await signup(http, p) for p in ("cr_a", "cr_b", "cr_e")]
    a, b = await sockets(ann), await sockets(bob)
    ack = await a.ok("call:invite", {"user_ids": [bob.id], "media": "video"})
    call_id = ack["call_id"]
    incoming = await b.expect("call:incoming", of(call_id))
    assert incoming["from_user_id"] == ann.id and incoming["media"] == "video"
    room_id = incoming["room_id"]
    await b.ok("call:accept", {"call_id": call_id})
    await b.ok("call:hangup", {"call_id": call_id})
    await a.expect("call:ended", lambda d: d == {"call_id": call_id, "reason": "hangup"})

    record = await get(http, f"/v1/calls/{call_id.upper()}", ann)
    assert record["id"] == call_id and record["room_id"] == room_id
    assert record["state"] == "ended" and record["end_reason"] == "hangup"
    assert record["initiator_id"] == ann.id and record["media"] == "video"
    assert record["answered_at"] and record["ended_at"] and record["duration"] >= 0
    people = {p["user_id"]: p for p in record["participants"]}
    assert set(people) == {ann.id, bob.id}
    assert all(p["state"] == "left" and p["joined_at"] and p["left_at"]
               for p in people.values())
    await get(http, f"/v1/calls/{call_id}", eve, 404)
    await get(http, f"/v1/calls/{uuid.uuid4()}", ann, 404)
    await get(http, "/v1/calls/not-an-id", ann, 404)

    async def summarised() -> bool:
        page = await get(http, f"/v1/rooms/{room_id}/messages", ann)
        return any(m["kind"] == "system" and m["client_id"] == f"call:{call_id}"
                   for m in page["items"])

    await eventually(summarised, 10, "the call's system message in the room")
    page = await get(http, f"/v1/rooms/{room_id}/messages", bob)
    [summary] = [m for m in page["items"] if m["kind"] == "system"]
    assert summary["text"].startswith("Video call, 0:0") and summary["seq"] == 1


async def test_a_group_call_in_a_room(http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob, cat = [await signup(http, p) for p in ("cg_a", "cg_b", "cg_c")]
    async with http.post("/v1/rooms", headers=ann.auth, json={
            "kind": "group", "member_ids": [bob.id, cat.id], "name": "calls"}) as response:
        assert response.status == 201
        room_id = (await response.json())["id"]
    a, b, c = await sockets(ann), await sockets(bob), await sockets(cat)
    ack = await a.ok("call:invite", {"room_id": room_id, "media": "audio"})
    call_id = ack["call_id"]
    await b.expect("call:incoming", of(call_id))
    await c.expect("call:incoming", of(call_id))
    await b.ok("call:accept", {"call_id": call_id})
    await c.ok("call:accept", {"call_id": call_id})
    await a.expect("call:accepted", lambda d: d == {"call_id": call_id, "user_id": cat.id})
    await b.ok("call:signal", {"call_id": call_id, "to_user_id": cat.id, "kind": "offer",
                               "payload": OFFER})
    assert (await c.expect("call:signal", of(call_id)))["from_user_id"] == bob.id
    await a.ok("call:hangup", {"call_id": call_id})
    await b.expect("call:left", lambda d: d == {"call_id": call_id, "user_id": ann.id})
    await c.ok("call:hangup", {"call_id": call_id})
    await b.expect("call:ended", lambda d: d == {"call_id": call_id, "reason": "hangup"})


# -- a server of our own: a 1 s ring timeout, STUN and TURN configured -------------------------

@pytest.fixture(scope="module")
def short_ring(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    with sibling_server(
        hubbub,
        CALL_RING_TIMEOUT="1",
        STUN_URLS="stun:stun1.example.test:3478, stun:stun2.example.test:3478",
        TURN_URLS="turn:turn.example.test:3478?transport=udp",
        TURN_SECRET=TURN_SECRET,
        TURN_CREDENTIAL_TTL="600",
    ) as server:
        yield server


@pytest_asyncio.fixture
async def short_http(short_ring: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=short_ring.base_url) as session:
        yield session


async def test_unanswered_call_times_out_with_call_missed(
        short_ring: HubbubProcess, short_http: aiohttp.ClientSession, sockets: Any) -> None:
    ann, bob = await signup(short_http, "ct_a"), await signup(short_http, "ct_b")
    a = await sockets(ann, short_ring.base_url)
    b = await sockets(bob, short_ring.base_url)
    call_id = await ring(a, b, bob)
    assert (await a.expect("call:ended", of(call_id), timeout=10))["reason"] == "unanswered"
    assert (await b.expect("call:ended", of(call_id), timeout=10))["reason"] == "unanswered"
    pushed = await b.expect("notification",
                            lambda d: d["notification"]["kind"] == "call_missed", timeout=10)
    assert pushed["notification"]["data"]["call_id"] == call_id
    assert pushed["notification"]["actor"]["id"] == ann.id
    listed = await get(short_http, "/v1/notifications", bob)
    assert [n["data"]["call_id"] for n in listed["items"] if n["kind"] == "call_missed"] == [
        call_id]
    record = await get(short_http, f"/v1/calls/{call_id}", bob)
    assert record["end_reason"] == "unanswered" and record["answered_at"] is None
    assert {p["user_id"]: p["state"] for p in record["participants"]} == {
        ann.id: "left", bob.id: "missed"}


async def test_ice_servers_carry_turn_rest_credentials(
        short_http: aiohttp.ClientSession) -> None:
    ann = await signup(short_http, "ci_a")
    before = int(time.time())
    body = await get(short_http, "/v1/calls/ice-servers", ann)
    after = int(time.time())
    assert body["ttl"] == 600
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:stun1.example.test:3478", "stun:stun2.example.test:3478"]}
    assert turn["urls"] == ["turn:turn.example.test:3478?transport=udp"]
    expiry, user_id = turn["username"].split(":")
    assert user_id == ann.id and before + 600 <= int(expiry) <= after + 600
    expected = base64.b64encode(hmac.new(TURN_SECRET.encode(), turn["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected
    async with short_http.get("/v1/calls/ice-servers") as response:
        assert response.status == 401


async def test_shared_server_without_ice_config_returns_an_empty_list(
        http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "ci_b")
    assert await get(http, "/v1/calls/ice-servers", ann) == {"ice_servers": [], "ttl": 86400}
