"""20 clients each send 50 messages into one room at the same time: every client sees all
1000 messages with seq 1..1000 in order, and Postgres holds exactly those 1000. On a server
of its own whose per-socket event limit is out of the way: the subject is concurrency, and
every send must be acked the first time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.conftest import sibling_server
from tests.e2e.live import Live, signup
from tests.e2e.test_gateway_chat import create_room
from tests.support.server import HubbubProcess

CLIENTS = 20
EACH = 50
TOTAL = CLIENTS * EACH


@pytest.fixture(scope="module")
def node(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    with sibling_server(hubbub, SOCKET_EVENTS_PER_SECOND="1000",
                        SOCKET_EVENT_BURST="1000") as server:
        yield server


@pytest_asyncio.fixture
async def http(node: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=node.base_url) as session:
        yield session


async def send_all(live: Live, room: str, who: int) -> list[int]:
    """Send EACH messages one after the other, each waiting for its ack."""
    seqs = []
    for n in range(EACH):
        payload = {"room_id": room, "client_id": f"c{who}-{n}", "text": f"{who}:{n}"}
        ack = await live.call("message:send", payload, timeout=30)
        assert ack["ok"], ack
        seqs.append(ack["message"]["seq"])
    return seqs


async def test_twenty_clients_fifty_messages_each(
        node: HubbubProcess, http: aiohttp.ClientSession) -> None:
    accounts = [await signup(http, "conc") for _ in range(CLIENTS)]
    room = await create_room(http, accounts[0], "group", accounts[1:], name="crowd")
    lives = [await Live.connect(node.base_url, a.token) for a in accounts]
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

    conn = await asyncpg.connect(node.env["DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT seq FROM messages WHERE room_id = $1 ORDER BY seq",
                                room)
    finally:
        await conn.close()
    assert [r["seq"] for r in rows] == list(range(1, TOTAL + 1))
    for live in lives:
        await live.close()
    print(f"\n{TOTAL} messages from {CLIENTS} clients acked in {elapsed:.2f}s")
