"""Calls with caller and callee on different nodes: ringing, accepting, offer / answer / ICE
relayed both ways, hang-up recorded once; the ring timeout (2 s on this cluster) ends an
unanswered call and leaves an answered one alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.e2e.cluster.clients import Rest, new_users
from tests.e2e.live import Account, Live
from tests.support.cluster import HubbubCluster
from tests.support.polling import eventually, holds

OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}


def of(call_id: str) -> Any:
    return lambda data: data["call_id"] == call_id


async def get(http: aiohttp.ClientSession, path: str, who: Account) -> Any:
    async with http.get(path, headers=who.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def system_messages(http: aiohttp.ClientSession, room_id: str, who: Account,
                          call_id: str) -> list[dict[str, Any]]:
    page = await get(http, f"/v1/rooms/{room_id}/messages?limit=100", who)
    return [m for m in page["items"]
            if m["kind"] == "system" and m["client_id"] == f"call:{call_id}"]


async def relay(sender: Live, receiver: Live, call_id: str, frm: Account, to: Account,
                kind: str, payload: Any) -> None:
    await sender.ok("call:signal", {"call_id": call_id, "to_user_id": to.id, "kind": kind,
                                    "payload": payload})
    got = await receiver.expect("call:signal", lambda d: d["call_id"] == call_id
                                and d["kind"] == kind)
    assert got == {"call_id": call_id, "from_user_id": frm.id, "kind": kind,
                   "payload": payload}


async def test_f_a_call_between_nodes_is_signalled_and_ended_once(
        cluster: HubbubCluster, rest: Rest) -> None:
    ann, bob = await new_users(rest.on(0), 2, "xcall")
    a = await Live.connect(cluster.url(0), ann.token)
    b = await Live.connect(cluster.url(1), bob.token)
    try:
        call_id = (await a.ok("call:invite", {"user_ids": [bob.id], "media": "video"}))[
            "call_id"]
        incoming = await b.expect("call:incoming", of(call_id))
        assert incoming["from_user_id"] == ann.id and incoming["media"] == "video"
        await b.ok("call:accept", {"call_id": call_id})
        assert await a.expect("call:accepted", of(call_id)) == {"call_id": call_id,
                                                               "user_id": bob.id}
        await relay(a, b, call_id, ann, bob, "offer", OFFER)
        await relay(b, a, call_id, bob, ann, "answer", ANSWER)
        for i in range(3):
            await relay(a, b, call_id, ann, bob, "ice", {"candidate": f"a{i}"})
            await relay(b, a, call_id, bob, ann, "ice", {"candidate": f"b{i}"})

        await b.ok("call:hangup", {"call_id": call_id})
        assert await a.expect("call:ended", of(call_id)) == {"call_id": call_id,
                                                            "reason": "hangup"}
        far = rest.on(2)
        record = await get(far, f"/v1/calls/{call_id}", ann)
        assert record["state"] == "ended" and record["end_reason"] == "hangup"
        assert record["answered_at"] and record["ended_at"]
        assert {p["user_id"]: p["state"] for p in record["participants"]} == {
            ann.id: "left", bob.id: "left"}

        async def summarised() -> bool:
            return bool(await system_messages(far, incoming["room_id"], bob, call_id))

        await eventually(summarised, 10, "the call's system message")
        assert len(await system_messages(far, incoming["room_id"], bob, call_id)) == 1
        # The call ended once: one call:ended for ann, and the record did not change.
        assert len(a.seen("call:ended", of(call_id))) == 1
        assert len(b.seen("call:ended", of(call_id))) <= 1
        assert await get(far, f"/v1/calls/{call_id}", bob) == record
    finally:
        for live in (a, b):
            await live.close()


async def test_f_ring_timeout_ends_an_unanswered_call_but_not_an_answered_one(
        cluster: HubbubCluster, rest: Rest) -> None:
    ring = float(cluster.env["CALL_RING_TIMEOUT"])
    cat, dan, eve, fay = await new_users(rest.on(1), 4, "ring")
    c = await Live.connect(cluster.url(1), cat.token)
    d = await Live.connect(cluster.url(2), dan.token)
    e = await Live.connect(cluster.url(2), eve.token)
    f = await Live.connect(cluster.url(0), fay.token)
    try:
        started = time.monotonic()
        missed = (await c.ok("call:invite", {"user_ids": [dan.id], "media": "audio"}))[
            "call_id"]
        answered = (await e.ok("call:invite", {"user_ids": [fay.id], "media": "audio"}))[
            "call_id"]
        await d.expect("call:incoming", of(missed))
        await f.expect("call:incoming", of(answered))
        await f.ok("call:accept", {"call_id": answered})
        await e.expect("call:accepted", of(answered))
        http = rest.on(0)

        async def answered_goes_on() -> bool:
            assert not e.seen("call:ended", of(answered)), e.seen("call:ended")
            assert not f.seen("call:ended", of(answered)), f.seen("call:ended")
            record = await get(http, f"/v1/calls/{answered}", eve)
            return record["state"] == "active"

        async def unanswered_ends() -> None:
            for live in (c, d):
                ended = await live.expect("call:ended", of(missed), timeout=ring + 10)
                assert ended["reason"] == "unanswered"

        # The unanswered call ends while the answered one outlives its own ring timer by
        # two seconds.
        hold = ring + 2.0 - (time.monotonic() - started)
        await asyncio.gather(unanswered_ends(), holds(
            answered_goes_on, hold, "the answered call still active after its ring timeout"))
        record = await get(http, f"/v1/calls/{missed}", dan)
        assert record["state"] == "ended" and record["end_reason"] == "unanswered"
        assert record["answered_at"] is None
        assert {p["user_id"]: p["state"] for p in record["participants"]} == {
            cat.id: "left", dan.id: "missed"}

        await relay(e, f, answered, eve, fay, "offer", OFFER)
        await relay(f, e, answered, fay, eve, "answer", ANSWER)
        await e.ok("call:hangup", {"call_id": answered})
        assert (await f.expect("call:ended", of(answered)))["reason"] == "hangup"
        record = await get(http, f"/v1/calls/{answered}", fay)
        assert record["state"] == "ended" and record["end_reason"] == "hangup"
        for call_id, room_of, who in ((missed, d, dan), (answered, f, fay)):
            room_id = room_of.seen("call:incoming", of(call_id))[0]["room_id"]

            async def summarised(room_id: str = room_id, call_id: str = call_id,
                                 who: Account = who) -> bool:
                return len(await system_messages(http, room_id, who, call_id)) == 1

            await eventually(summarised, 10, f"the system message of {call_id}")
    finally:
        for live in (c, d, e, f):
            await live.close()
