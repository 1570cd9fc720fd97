"""The gateway's metrics on a real server's /metrics, moved by real Socket.IO clients: events by
result, ack times, disconnects by reason, outbound queues, and Socket.IO's HTTP requests
counted under route="socket.io" without landing in the HTTP latency histogram.

On a server of their own (no Redis: a single node, nobody else's sockets), whose event limit
barely refills (BURST events per socket, then rate_limited), so every count is exact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import sibling_server
from tests.e2e.live import DEADLINE, Live, mint_token, signup
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

BURST = 6
ROOM = "0190a0b0-0000-7000-8000-000000000001"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def node(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    with sibling_server(hubbub, REDIS_URL="", SOCKET_EVENT_BURST=str(BURST),
                        SOCKET_EVENTS_PER_SECOND="0.0001") as server:
        yield server


@pytest_asyncio.fixture
async def http(node: HubbubProcess) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=node.base_url) as session:
        yield session


async def scrape(http: aiohttp.ClientSession) -> Samples:
    async with http.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, prefix: str) -> dict[tuple[str, ...], float]:
    """The samples named `prefix` that changed, by their label values (sorted by name)."""
    return {tuple(v for _, v in sorted(labels)): after[name, labels] - before.get(
        (name, labels), 0.0)
        for name, labels in after if name == prefix
        and after[name, labels] != before.get((name, labels), 0.0)}


async def test_events_are_counted_by_event_and_result(node: HubbubProcess,
                                                      http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "evmetrics")
    live = await Live.connect(node.base_url, ann.token)
    before = await scrape(http)
    codes = []
    for event, payload in [
        ("presence:subscribe", {"user_ids": []}),  # ok
        ("presence:subscribe", {"user_ids": "all"}),  # invalid
        ("no:such:event", {"x": 1}),  # invalid, event "unknown"
        ("connect", {"token": "x"}),  # a client's event named connect: "unknown" too
        ("message:send", {"room_id": ROOM, "client_id": "c1", "text": "x" * 40_000}),
        ("presence:subscribe", {"user_ids": []}),  # ok: the BURST-th token
        ("presence:subscribe", {"user_ids": []}),  # rate_limited from here on
        ("typing", {"room_id": ROOM, "active": True}),
    ]:
        ack = await live.call(event, payload)
        codes.append("ok" if ack["ok"] else ack["error"]["code"])
    assert codes == ["ok", "invalid", "invalid", "invalid", "too_large", "ok",
                     "rate_limited", "rate_limited"]
    after = await scrape(http)
    assert moved(before, after, "hubbub_socket_events_total") == {
        ("presence:subscribe", "ok"): 2,
        ("presence:subscribe", "invalid"): 1,
        ("unknown", "invalid"): 2,
        ("message:send", "too_large"): 1,
        ("presence:subscribe", "rate_limited"): 1,
        ("typing", "rate_limited"): 1,
    }
    assert moved(before, after, "hubbub_socket_ack_seconds_count") == {
        ("presence:subscribe",): 4, ("unknown",): 2, ("message:send",): 1, ("typing",): 1}
    # Every ack of this test was ready within the largest bucket.
    assert moved(before, after, "hubbub_socket_ack_seconds_bucket")[
        ("presence:subscribe", "10.0")] == 4
    await live.close()


async def raw_socket(http: aiohttp.ClientSession,
                     token: str) -> aiohttp.ClientWebSocketResponse:
    """A websocket speaking Engine.IO 4 / Socket.IO 5 itself, connected to "/"."""
    ws = await http.ws_connect("/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str(timeout=DEADLINE)).startswith("0{")
    await ws.send_str("40" + json.dumps({"token": token}))
    assert (await ws.receive_str(timeout=DEADLINE)).startswith("40{")
    return ws


async def test_disconnects_are_counted_by_reason(node: HubbubProcess,
                                                 http: aiohttp.ClientSession) -> None:
    ann, bob, cyd = (await signup(http, "bye"), await signup(http, "kicked"),
                     await signup(http, "expiring"))
    before = await scrape(http)
    sockets = value(before, "hubbub_sockets_connected")
    # python-socketio's AsyncClient.disconnect() closes its websocket without waiting for
    # its DISCONNECT packet to be written: the server sees either reason. These say which.
    polite, rude = await raw_socket(http, ann.token), await raw_socket(http, ann.token)
    kicked = await Live.connect(node.base_url, bob.token)
    expiring = await Live.connect(node.base_url, mint_token(cyd.id, 2))
    assert value(await scrape(http), "hubbub_sockets_connected") == sockets + 4

    await polite.send_str("41")  # Socket.IO's DISCONNECT, then the websocket's close
    await polite.close()
    await rude.close()  # the websocket closes, not a word of Socket.IO
    async with http.post("/v1/auth/logout_all", headers=bob.auth) as response:
        assert response.status == 204  # the server closes bob's socket
    # cyd's token expires: the server closes that socket too.
    for live in (kicked, expiring):
        await asyncio.wait_for(live.disconnected.wait(), DEADLINE)
    expected = {("client_disconnect",): 1, ("transport_close",): 1,
                ("server_disconnect",): 1, ("token_expired",): 1}

    async def counted() -> bool:
        return moved(before, await scrape(http), "hubbub_socket_disconnects_total") == expected

    await eventually(counted, DEADLINE, f"disconnects {expected}")
    after = await scrape(http)
    assert value(after, "hubbub_sockets_connected") == sockets
    assert moved(before, after, "hubbub_socket_disconnects_total") == expected


async def test_socket_io_requests_are_counted_not_timed(
        node: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "transports")
    before = await scrape(http)
    live = await Live.connect(node.base_url, ann.token)  # straight over websocket
    polling = socketio.AsyncClient(reconnection=False)
    await polling.connect(node.base_url, auth={"token": ann.token}, transports=["polling"],
                          wait_timeout=DEADLINE)
    assert (await polling.call("presence:subscribe", {"user_ids": []}, timeout=DEADLINE))[
        "ok"] is True
    during = await scrape(http)
    transports = moved(before, during, "hubbub_socketio_requests_total")
    assert transports[("websocket",)] == 1
    assert transports[("polling",)] >= 3  # handshake, connect, its ack's poll, ...
    assert set(transports) <= {("websocket",), ("polling",)}
    # The outbound queues of both sockets, read as /metrics is scraped.
    assert value(during, "hubbub_socket_outbound_queue_depth_gcount") >= 2
    assert value(during, "hubbub_socket_outbound_queue_depth_bucket", le="+Inf") == \
        value(during, "hubbub_socket_outbound_queue_depth_gcount")
    assert ("hubbub_socket_outbound_queue_max_depth", frozenset()) in during

    # Not polling.disconnect(): python-engineio's client then waits for its pending long
    # poll, which the server leaves open until the client's 30 s timeout.
    await polling.eio.disconnect(abort=True)
    await live.close()

    async def finished() -> bool:
        samples = await scrape(http)
        return value(samples, "hubbub_http_requests_total", method="GET", route="socket.io",
                     status="101") > value(before, "hubbub_http_requests_total", method="GET",
                                           route="socket.io", status="101")

    await eventually(finished, DEADLINE, "the websocket's request to finish")
    after = await scrape(http)
    routes = {dict(labels).get("route") for name, labels in after
              if name.startswith("hubbub_http_request")}
    assert "socket.io" in routes and "unnamed" not in routes
    assert value(after, "hubbub_http_requests_total", method="POST", route="socket.io",
                 status="200") > 0
    timed = {dict(labels).get("route") for name, labels in after
             if name.startswith("hubbub_http_request_duration_seconds")}
    assert "socket.io" not in timed and "ops.metrics" in timed
