"""Malformed, oversized and too-fast events get `ok: false` acks; the socket stays up."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.e2e.live import Live, signup
from tests.support.server import HubbubProcess

ROOM = "0190a0b0-0000-7000-8000-000000000001"
GARBAGE: list[tuple[str, Any]] = [
    ("room:join", None),
    ("room:join", "garbage"),
    ("room:join", 42),
    ("room:join", [1, 2, 3]),
    ("room:join", {"room_id": "not-an-id"}),
    ("room:join", {"room_id": ROOM, "since_seq": "7"}),
    ("room:join", {"room_id": ROOM, "surprise": 1}),
    ("message:send", {"room_id": ROOM, "client_id": "c", "text": ""}),
    ("message:send", {"room_id": ROOM, "text": "no client id"}),
    ("typing", {"room_id": ROOM, "active": "very"}),
    ("message:read", {"room_id": ROOM, "seq": -3}),
    ("presence:set", {"status": "invisible"}),
    ("presence:subscribe", {"user_ids": "all"}),
    ("auth:refresh", {}),
    ("no:such:event", {"x": 1}),
    ("call:invite", {"user_ids": []}),
    ("connect", {"token": "x"}),
    ("disconnect", {}),
]


async def test_garbage_gets_invalid_and_the_connection_survives(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "garbage")
    live = await Live.connect(hubbub.base_url, ann.token)
    for event, payload in GARBAGE:
        ack = await live.call(event, payload)
        assert ack["ok"] is False, (event, payload, ack)
        assert ack["error"]["code"] == "invalid", (event, payload, ack)
        assert isinstance(ack["error"]["message"], str)
    # Several arguments, and no ack requested at all: nothing breaks.
    assert (await live.client.call("room:join", ({"room_id": ROOM}, 2), timeout=10))[
        "error"]["code"] == "invalid"
    for event, payload in GARBAGE:
        await live.client.emit(event, payload)
    assert (await live.ok("presence:subscribe", {"user_ids": [ann.id]}))["presence"][0][
        "status"] == "online"
    assert live.client.connected and not live.disconnected.is_set()
    await live.close()


async def test_oversized_events_are_refused(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "big")
    live = await Live.connect(hubbub.base_url, ann.token)
    ack = await live.call("message:send", {"room_id": ROOM, "client_id": "c1",
                                           "text": "x" * 40_000})
    assert ack["ok"] is False and ack["error"]["code"] == "too_large"
    assert (await live.call("presence:subscribe", {"user_ids": []}))["ok"] is True
    await live.close()


async def test_a_fast_sender_is_rate_limited_per_connection(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "fast")
    flood, calm = [await Live.connect(hubbub.base_url, ann.token) for _ in range(2)]
    acks = await asyncio.gather(*(flood.call("presence:subscribe", {"user_ids": []})
                                  for _ in range(150)))
    limited = [a for a in acks if not a["ok"]]
    assert limited, "150 events at once must exceed the burst"
    assert all(a["error"]["code"] == "rate_limited" and a["error"]["retry_after"] > 0
               for a in limited)
    assert sum(a["ok"] for a in acks) >= 40  # at least the burst went through
    # The limit is per connection: the same user's other socket is unaffected.
    assert (await calm.call("presence:subscribe", {"user_ids": []}))["ok"] is True
    for live in (flood, calm):
        await live.close()
