"""20 clients each send 50 messages into one room at the same time: every client sees all
1000 messages with seq 1..1000 in order, and Postgres holds exactly those 1000."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg

from tests.e2e.live import Live, signup
from tests.e2e.test_gateway_chat import create_room
from tests.support.server import HubbubProcess

CLIENTS = 20
EACH = 50
TOTAL = CLIENTS * EACH


async def send_all(live: Live, room: str, who: int) -> list[int]:
    """Send EACH messages one after the other; honour rate_limited's retry_after (the
    server's backpressure, not a guess at timing)."""
    seqs = []
    for n in range(EACH):
        payload = {"room_id": room, "client_id": f"c{who}-{n}", "text": f"{who}:{n}"}
        while True:
            ack = await live.call("message:send", payload, timeout=30)
            if ack["ok"]:
                seqs.append(ack["message"]["seq"])
                break
            assert ack["error"]["code"] == "rate_limited", ack
            await asyncio.sleep(ack["error"]["retry_after"])
    return seqs


async def test_twenty_clients_fifty_messages_each(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    accounts = [await signup(http, "conc") for _ in range(CLIENTS)]
    room = await create_room(http, accounts[0], "group", accounts[1:], name="crowd")
    lives = [await Live.connect(hubbub.base_url, a.token) for a in accounts]
    for live in lives:
        await live.ok("room:join", {"room_id": room})

    started = time.monotonic()
    acked = await asyncio.gather(*(send_all(live, room, i) for i, live in enumerate(lives)))
    elapsed = time.monotonic() - started
    every_seq = sorted(seq for seqs in acked for seq in seqs)
    assert every_seq == list(range(1, TOTAL + 1))
    for seqs in acked:  # each sender's own messages got increasing seqs
        assert seqs == sorted(seqs)

    for live in lives:
        got = await live.collect("message:new", TOTAL,
                                 lambda d: d["message"]["room_id"] == room, timeout=60)
        assert [d["message"]["seq"] for d in got] == list(range(1, TOTAL + 1))

    conn = await asyncpg.connect(hubbub.env["DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT seq FROM messages WHERE room_id = $1 ORDER BY seq",
                                room)
    finally:
        await conn.close()
    assert [r["seq"] for r in rows] == list(range(1, TOTAL + 1))
    for live in lives:
        await live.close()
    print(f"\n{TOTAL} messages from {CLIENTS} clients acked in {elapsed:.2f}s")
