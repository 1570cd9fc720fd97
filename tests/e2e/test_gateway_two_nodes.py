"""Two nodes sharing Postgres and Redis: Socket.IO emits reach sockets on the other node
through the Redis manager (chat and presence), and a second node's stale RoomActor is
fenced by the unique (room, seq) rather than writing a duplicate seq."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.e2e.live import Live, signup
from tests.e2e.test_gateway_chat import create_room
from tests.support.server import HubbubProcess

SHARED = ("DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "JWT_SECRET",
          "RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_ROUTES")


@pytest.fixture(scope="module")
def second_node(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    node = HubbubProcess({key: hubbub.env[key] for key in SHARED} | {"NODE_ID": "node-two"})
    node.start()
    yield node
    assert node.stop() == 0


async def test_chat_and_presence_cross_nodes(hubbub: HubbubProcess, second_node: HubbubProcess,
                                             http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "n1"), await signup(http, "n2")
    room = await create_room(http, ann, "direct", [bob])
    a = await Live.connect(hubbub.base_url, ann.token)
    watch = await a.ok("presence:subscribe", {"user_ids": [bob.id]})
    assert watch["presence"][0]["status"] == "offline"

    b = await Live.connect(second_node.base_url, bob.token)
    online = await a.expect("presence", lambda p: p["user_id"] == bob.id)
    assert online["status"] == "online"
    await b.ok("room:join", {"room_id": room})
    await a.ok("room:join", {"room_id": room})

    first = (await a.ok("message:send", {"room_id": room, "client_id": "a1",
                                         "text": "from node one"}))["message"]
    assert (await b.expect("message:new"))["message"] == first
    # Node two's RoomActor loaded the room before that message: its seq is stale, and the
    # store's fence makes it take the next one instead of a duplicate.
    second = (await b.ok("message:send", {"room_id": room, "client_id": "b1",
                                          "text": "from node two"}))["message"]
    assert second["seq"] == 2
    assert (await a.expect("message:new", lambda d: d["message"]["seq"] == 2))[
        "message"] == second
    for live in (a, b):
        await live.close()
