"""Losing nodes: kill -9 under chat load, kill -9 during calls, and a rolling restart under
chat load. Each test has a cluster (and a database) of its own.

The clients behave like real ones (tests/e2e/cluster/clients.py): a socket that drops
reconnects to another node and rejoins with since_seq; a send without an ok ack is sent again
with the same client_id. What must hold: nothing acked is lost, nothing is stored twice,
every client ends with seq 1..n exactly, the dead node leaves every view within 5 s, its
users go offline, its calls end.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import asyncpg

from actors.rendezvous import owner
from tests.e2e.cluster.clients import ChatClient, Rest, create_group, new_users
from tests.e2e.cluster.conftest import MakeCluster
from tests.e2e.cluster.history_checks import check_history, late_pushes
from tests.e2e.live import Account, Live
from tests.support.cluster import HubbubCluster
from tests.support.polling import eventually

MEMBERS_PER_NODE = 2
VIEW_DROP_BOUND = 5.0  # the cluster's promise: a dead node leaves every view within 5 s
POLL_MARGIN = 0.5  # our polling and a loaded event loop on top of it
SETTLE_DEADLINE = 30.0
# A node that leaves on SIGTERM is out of the other views well before its heartbeat could
# have expired (CLUSTER_NODE_TIMEOUT_SECONDS, 3 s by default).
LEFT_BOUND = 3.0


async def stored(cluster: HubbubCluster, room_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(cluster.database_url)
    try:
        return await conn.fetch(
            "SELECT id::text AS id, seq, client_id, sender_id::text AS sender_id "
            "FROM messages WHERE room_id = $1 ORDER BY seq", room_id)
    finally:
        await conn.close()


async def chat_room(cluster: HubbubCluster, rest: Rest,
                    prefix: str) -> tuple[str, list[ChatClient]]:
    """A group room of two members per node, each connected to its node and joined."""
    http = rest.on(0)
    members = await new_users(http, MEMBERS_PER_NODE * len(cluster.nodes), prefix)
    room = await create_group(http, members[0], members[1:], prefix)
    clients = [ChatClient(cluster, m, room, f"{prefix}{i}") for i, m in enumerate(members)]
    for i, client in enumerate(clients):
        await client.connect(i // MEMBERS_PER_NODE)
    return room, clients


async def wait_acked(clients: list[ChatClient], at_least: int, senders: list[asyncio.Task[Any]],
                     deadline: float = 30.0) -> None:
    """Until the clients together hold `at_least` acks (a sender failing ends it early)."""

    async def enough() -> bool:
        for task in senders:
            if task.done():
                task.result()  # raises what went wrong
        return sum(len(c.acked) for c in clients) >= at_least

    try:
        await eventually(enough, deadline, f"{at_least} acks")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; errors: {[dict(c.errors) for c in clients]}") from None


async def verify_chat(cluster: HubbubCluster, room: str, clients: list[ChatClient],
                      *, gap_free_live: bool) -> dict[str, Any]:
    """Every acked message stored once, every client holding seq 1..n exactly; returns what
    happened on the way (for the report). `gap_free_live`: no node died, so every socket's
    live stream is in order and skips nothing; otherwise a message stored by the dead node
    may be pushed late, or only replayed by since_seq."""
    acked = {cid: m for c in clients for cid, m in c.acked.items()}
    n = len(acked)
    by_seq = {m["seq"]: m for m in acked.values()}
    assert len(by_seq) == n and sorted(by_seq) == list(range(1, n + 1)), \
        "the acked messages do not have seqs 1..n, once each"

    rows = await stored(cluster, room)
    assert len(rows) == n, f"Postgres holds {len(rows)} messages, {n} were acked"
    assert len({r["client_id"] for r in rows}) == n
    assert {r["client_id"] for r in rows} == set(acked)
    assert {r["id"] for r in rows} == {m["id"] for m in acked.values()}
    assert [r["seq"] for r in rows] == list(range(1, n + 1))

    filled = await asyncio.gather(*(c.settle(n, SETTLE_DEADLINE) for c in clients))
    problems = [p for c in clients
                for p in check_history(c, n, by_seq, late_ok=not gap_free_live)]
    assert not problems, problems
    gaps = {c.name: [(i, s.node, s.live_gaps()) for i, s in enumerate(c.sessions)
                     if s.live_gaps()] for c in clients}
    gaps = {name: found for name, found in gaps.items() if found}
    if gap_free_live:
        assert not gaps, f"live message:new skipped seqs on a socket that stayed up: {gaps}"
    assert await cluster.live_count("RoomActor") == 1, await cluster.live_by_node("RoomActor")
    late = {c.name: [(i, late_pushes(s)) for i, s in enumerate(c.sessions) if late_pushes(s)]
            for c in clients}
    return {"n": n, "filled_by_since_seq": dict(zip([c.name for c in clients], filled,
                                                    strict=True)),
            "late_pushes": {name: found for name, found in late.items() if found},
            "live_gaps": gaps, "reconnects": {c.name: c.reconnects for c in clients},
            "errors": {c.name: dict(c.errors) for c in clients if c.errors},
            "retried": sum(1 for c in clients for a in c.attempts.values() if a > 1)}


async def view_drop_times(cluster: HubbubCluster, dead: str, since: float,
                          deadline: float, nodes: set[int] | None = None) -> dict[int, float]:
    """Seconds from `since` until each serving node's (or `nodes`') /info view no longer
    lists `dead`."""
    pending = set(cluster.up if nodes is None else nodes)
    times: dict[int, float] = {}

    async def all_dropped() -> bool:  # a view is only seen by asking /info
        views = await cluster.views(pending)
        now = time.monotonic()
        for i, view in views.items():
            if dead not in view["nodes"]:
                times[i] = now - since
                pending.discard(i)
        return not pending

    try:
        await eventually(all_dropped, deadline - (time.monotonic() - since),
                         f"{dead} to leave every view")
    except TimeoutError:
        raise AssertionError(f"{dead} still in the view of {sorted(pending)} after "
                             f"{deadline}s") from None
    return times


async def test_g_kill_nine_under_chat_load(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    rest = Rest(cluster)
    clients: list[ChatClient] = []
    others: list[Live] = []
    try:
        room, clients = await chat_room(cluster, rest, "kl")
        hosts = await cluster.live_by_node("RoomActor")
        [victim] = [i for i, count in hosts.items() if count == 1]  # kill the room's host
        survivor = cluster.other_up(victim)
        zed, wes = await new_users(rest.on(survivor), 2, "kz")
        watcher = await Live.connect(cluster.url(survivor), wes.token)
        others.append(watcher)
        others.append(await Live.connect(cluster.url(victim), zed.token))
        answer = await watcher.ok("presence:subscribe", {"user_ids": [zed.id]})
        if answer["presence"][0]["status"] != "online":
            await watcher.expect("presence", lambda p: p["user_id"] == zed.id
                                 and p["status"] == "online")

        per_client, kill_after = 40, 60
        senders = [asyncio.create_task(c.send_many(per_client, interval=0.01))
                   for c in clients]
        await wait_acked(clients, kill_after, senders)
        assert not all(task.done() for task in senders), "the load ended before the kill"
        killed_at = await cluster.kill(victim)
        print(f"\nkilled node-{victim} at {time.time():.3f} (wall clock)")
        drops = await view_drop_times(cluster, cluster.node_id(victim), killed_at, 15)
        offline = await watcher.expect(
            "presence", lambda p: p["user_id"] == zed.id and p["status"] == "offline",
            timeout=20)
        offline_after = time.monotonic() - killed_at
        await asyncio.gather(*senders)

        assert all(t <= VIEW_DROP_BOUND + POLL_MARGIN for t in drops.values()), \
            f"seconds until each view dropped {cluster.node_id(victim)}: {drops}"
        assert offline["last_seen_at"]
        moved = [c for c in clients if c.sessions[0].node == victim]
        assert moved and all(len(c.sessions) >= 2 and c.session.node != victim
                             for c in moved)
        # ...and rejoined from what they had seen (check_history checks the replay).
        assert all(c.sessions[1].since for c in moved), [c.sessions[1] for c in moved]
        # Exactly one survivor cleaned up after the dead node.
        reaped = await cluster.metric("hubbub_cluster_dead_nodes_reaped_total")
        assert sum(reaped.values()) == 1, reaped
        report = await verify_chat(cluster, room, clients, gap_free_live=False)
        n = report["n"]
        assert n == per_client * len(clients)
        print(f"\nkill -9 of node-{victim} (room host): views dropped it after {drops}; "
              f"zed offline after {offline_after:.2f}s; {report}")

        # The dead node comes back under its own id and port: the room's key is its again
        # (rendezvous), and the room carries on from where it was, hosted once.
        await cluster.restart(victim)
        back = ChatClient(cluster, clients[0].account, room, "back")
        clients.append(back)
        session = await back.connect(victim, since=n)
        assert session.node == victim and session.last_seq == n and session.missed == []
        last = await back.send_until_acked("after the restart")
        assert last["seq"] == n + 1
        for client in clients[:-1]:
            await client.settle(n + 1, SETTLE_DEADLINE)
            assert client.watermark() == n + 1, client.name
        assert await cluster.live_by_node("RoomActor") == {
            i: int(i == victim) for i in range(len(cluster.nodes))}
    finally:
        for live in others:
            await live.close()
        for client in clients:
            await client.close()
        await rest.close()


async def ring_up(caller: Live, callee: Live, callee_account: Account) -> str:
    call_id = (await caller.ok("call:invite", {"user_ids": [callee_account.id],
                                               "media": "audio"}))["call_id"]
    await callee.expect("call:incoming", lambda d: d["call_id"] == call_id)
    await callee.ok("call:accept", {"call_id": call_id})
    await caller.expect("call:accepted", lambda d: d["call_id"] == call_id)
    return call_id


async def call_record(http: aiohttp.ClientSession, call_id: str, who: Account) -> Any:
    async with http.get(f"/v1/calls/{call_id}", headers=who.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_h_kill_nine_during_calls(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    rest = Rest(cluster)
    size = len(cluster.nodes)
    lives: list[Live] = []
    try:
        callers = await new_users(rest.on(0), size, "hc")
        callees = await new_users(rest.on(0), size, "he")
        # Call k: caller on node k, callee on node k+1. Every node has one of each.
        caller_lives = [await Live.connect(cluster.url(k), callers[k].token)
                        for k in range(size)]
        callee_lives = [await Live.connect(cluster.url((k + 1) % size), callees[k].token)
                        for k in range(size)]
        lives += caller_lives + callee_lives
        calls = [await ring_up(caller_lives[k], callee_lives[k], callees[k])
                 for k in range(size)]
        view = tuple(cluster.live_ids())
        hosts = [cluster.index_of(owner(view, "CallActor", c)) for c in calls]
        assert Counter(hosts) == Counter({i: n for i, n in
                                          (await cluster.live_by_node("CallActor")).items()
                                          if n}), "CallActors are not where placement says"
        # Kill a callee's node; preferably one that also hosts that call's CallActor (it
        # must then be rebuilt from its record on a surviving node).
        victim = next(((k + 1) % size for k in range(size) if hosts[k] == (k + 1) % size), 1)
        lost_callee = (victim - 1) % size  # the call whose callee dies
        lost_caller = victim  # the call whose caller dies
        untouched = (victim + 1) % size
        killed_at = await cluster.kill(victim)

        ended_for_caller = await caller_lives[lost_callee].expect(
            "call:ended", lambda d: d["call_id"] == calls[lost_callee], timeout=15)
        caller_heard_after = time.monotonic() - killed_at
        ended_for_callee = await callee_lives[lost_caller].expect(
            "call:ended", lambda d: d["call_id"] == calls[lost_caller],
            timeout=max(1.0, 15 - (time.monotonic() - killed_at)))
        callee_heard_after = time.monotonic() - killed_at
        assert ended_for_caller["reason"] and ended_for_callee["reason"]

        http = rest.on(untouched)
        for k, who in ((lost_callee, callers[lost_callee]), (lost_caller, callees[lost_caller])):
            record = await call_record(http, calls[k], who)
            assert record["state"] == "ended" and record["end_reason"], record
        # The call with nobody on the dead node goes on.
        record = await call_record(http, calls[untouched], callers[untouched])
        assert record["state"] == "active", record
        await caller_lives[untouched].ok("call:signal", {
            "call_id": calls[untouched], "to_user_id": callees[untouched].id, "kind": "ice",
            "payload": {"candidate": "still here"}})
        await callee_lives[untouched].expect(
            "call:signal", lambda d: d["call_id"] == calls[untouched], timeout=10)

        # Both survivors of the ended calls are free: one calls the other.
        again = await ring_up(caller_lives[lost_callee], callee_lives[lost_caller],
                              callees[lost_caller])
        await caller_lives[lost_callee].ok("call:hangup", {"call_id": again})
        await callee_lives[lost_caller].expect("call:ended", lambda d: d["call_id"] == again)
        await caller_lives[untouched].ok("call:hangup", {"call_id": calls[untouched]})
        await callee_lives[untouched].expect(
            "call:ended", lambda d: d["call_id"] == calls[untouched])
        print(f"\nkill -9 of node-{victim}; CallActors on {hosts}; caller heard "
              f"{ended_for_caller} after {caller_heard_after:.2f}s, callee heard "
              f"{ended_for_callee} after {callee_heard_after:.2f}s")
    finally:
        for live in lives:
            await live.close()
        await rest.close()


async def test_i_rolling_restart_under_chat_load(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    rest = Rest(cluster)
    clients: list[ChatClient] = []
    try:
        room, clients = await chat_room(cluster, rest, "rr")
        stop = asyncio.Event()
        senders = [asyncio.create_task(c.send_many(None, stop=stop, interval=0.05))
                   for c in clients]
        timings = []
        for i in range(len(cluster.nodes)):
            await wait_acked(clients, sum(len(c.acked) for c in clients) + 30, senders)
            others = set(range(len(cluster.nodes))) - {i}
            began = time.monotonic()
            code, drops = await asyncio.gather(
                cluster.stop(i),
                view_drop_times(cluster, cluster.node_id(i), began, 15, nodes=others))
            assert code == 0, f"{cluster.node_id(i)} exited {code} on SIGTERM"
            stopped = time.monotonic() - began
            # It left the view itself (SIGTERM leaves first): the others did not have to
            # wait for its heartbeat to expire.
            assert all(t < LEFT_BOUND for t in drops.values()), drops
            await cluster.restart(i)
            timings.append((cluster.node_id(i), round(stopped, 2),
                            round(max(drops.values()), 2), round(time.monotonic() - began, 2)))
        await wait_acked(clients, sum(len(c.acked) for c in clients) + 30, senders)
        stop.set()
        await asyncio.gather(*senders)
        assert all(c.reconnects >= 1 for c in clients[:MEMBERS_PER_NODE]), \
            "the first node's clients never had to move"
        report = await verify_chat(cluster, room, clients, gap_free_live=True)
        print(f"\nrolling restart (node, exit s, left the views s, back s): {timings}; "
              f"{report}")
    finally:
        for client in clients:
            await client.close()
        await rest.close()
