"""Refused socket events leave nothing behind: `room:join` for made-up rooms and
`call:invite` into rooms the caller is not in are refused, and the actors they activated are
gone at once (not after the 600 s idle timeout), as /metrics' hubbub_actors_live shows."""

from __future__ import annotations

import asyncio

import aiohttp

from protocols.ids import new_id
from tests.e2e.live import Live, signup
from tests.e2e.test_gateway_chat import create_room
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

SOCKETS = 3
JOINS = 25  # per socket; with the invites, under the per-connection burst (40)
INVITES = 10
DEADLINE = 10.0


async def metrics(http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get("/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("hubbub_actor"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def live_of(values: dict[str, float], kind: str) -> float:
    return values.get(f'hubbub_actors_live{{kind="{kind}"}}', 0.0)


async def test_refused_joins_and_invites_leave_no_actors(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob, cat = [await signup(http, p) for p in ("refused", "owner", "member")]
    theirs = await create_room(http, bob, "group", [cat])  # ann is not in it
    sockets = [await Live.connect(hubbub.base_url, ann.token) for _ in range(SOCKETS)]
    before = await metrics(http)

    async def refused(live: Live) -> list[dict]:
        joins = [live.call("room:join", {"room_id": new_id()}) for _ in range(JOINS)]
        invites = [live.call("call:invite", {"room_id": room, "media": "audio"})
                   for room in [theirs] + [new_id() for _ in range(INVITES - 1)]]
        return await asyncio.gather(*joins, *invites)

    acks = [ack for acks in await asyncio.gather(*map(refused, sockets)) for ack in acks]
    assert len(acks) == SOCKETS * (JOINS + INVITES)
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"not_member"}, acks
    assert all(not a["ok"] for a in acks)

    async def all_gone() -> bool:
        now = await metrics(http)
        return all(live_of(now, kind) <= live_of(before, kind)
                   for kind in ("RoomActor", "CallActor"))

    await eventually(all_gone, DEADLINE, "the refused events' actors to be passivated")
    after = await metrics(http)
    # They were activated (one per refused event), and passivated.
    assert after["hubbub_actor_activations_total"] - \
        before["hubbub_actor_activations_total"] >= len(acks)
    assert after["hubbub_actor_passivations_total"] - \
        before["hubbub_actor_passivations_total"] >= len(acks)
    # The sockets stay usable, and their disconnects tell no call of the refused invites.
    assert (await sockets[0].call("presence:subscribe", {"user_ids": []}))["ok"] is True
    for live in sockets:
        await live.close()
    await eventually(all_gone, DEADLINE, "no actor woken by the disconnects")
