"""The gateway's metrics (server/gateway/metrics.py) as the namespace records them: each client
event once with its result and ack time, event names bounded, disconnects by reason, queue
depths read at scrape time; and the HTTP metrics of Socket.IO's requests (server/metrics.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from actors.errors import Rejected
from protocols.socket import CLIENT_EVENTS
from server.gateway import acks, namespace, session
from server.gateway.connections import Connection, Gateway
from server.gateway.endpoint import attach
from server.gateway.frames import GatewayServer
from server.gateway.limits import MAX_EVENT_BYTES, TokenBucket
from server.gateway.manager import LocalManager
from server.gateway.metrics import (
    MAX_RESULTS,
    SocketMetrics,
    queue_depths,
)
from server.gateway.namespace import GatewayNamespace, dispatch
from server.http.middleware import http_only
from server.http.problems import RateLimited
from server.keys import LIFECYCLE
from server.lifecycle import Lifecycle
from server.metrics import METRICS, metrics_middleware, setup_metrics

ROOM = "0190a0b0-0000-7000-8000-000000000001"
SUBSCRIBE = ({"user_ids": []},)
NOW = 1_000_000.0


class Rig:
    def __init__(self, burst: int = 100) -> None:
        self.registry = CollectorRegistry()
        self.draining = False
        self.metrics = SocketMetrics(self.registry, draining=lambda: self.draining,
                                     clock=lambda: NOW)
        self.gw = Gateway(sio=cast(Any, None), system=cast(Any, None), node_id="n1",
                          events_per_second=0.001, event_burst=burst)
        self.conn = Connection("s1", "u1", int(NOW) + 60, TokenBucket(0.001, burst))
        self.gw.connections["s1"] = self.conn

    async def event(self, event: Any, *args: Any, sid: str = "s1") -> dict[str, Any]:
        return await dispatch(self.gw, sid, event, args, self.metrics)

    def count(self, event: str, result: str) -> float:
        return self.registry.get_sample_value(
            "hubbub_socket_events_total", {"event": event, "result": result}) or 0.0

    def acks(self, event: str) -> float:
        return self.registry.get_sample_value(
            "hubbub_socket_ack_seconds_count", {"event": event}) or 0.0

    def disconnects(self, reason: str) -> float:
        return self.registry.get_sample_value(
            "hubbub_socket_disconnects_total", {"reason": reason}) or 0.0

    def all_events(self) -> dict[tuple[str, str], float]:
        return {(s.labels["event"], s.labels["result"]): s.value
                for family in self.registry.collect() if family.name == "hubbub_socket_events"
                for s in family.samples if s.name.endswith("_total") and s.value}


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """presence:subscribe answers ok; room:join is refused as not_member; typing crashes."""

    async def ok(gw: Gateway, conn: Connection, payload: Any) -> dict[str, Any]:
        return acks.ok()

    async def refuse(gw: Gateway, conn: Connection, payload: Any) -> dict[str, Any]:
        raise Rejected("not_member", "You are not a member of this room")

    async def crash(gw: Gateway, conn: Connection, payload: Any) -> dict[str, Any]:
        raise RuntimeError("a handler bug")

    monkeypatch.setattr(namespace, "ROUTES", {
        **namespace.ROUTES, "presence:subscribe": ok, "room:join": refuse, "typing": crash})
    yield


async def test_each_event_is_counted_once_by_result(handlers: None) -> None:
    rig = Rig()
    assert (await rig.event("presence:subscribe", *SUBSCRIBE))["ok"] is True
    assert (await rig.event("presence:subscribe", *SUBSCRIBE))["ok"] is True
    assert (await rig.event("presence:subscribe", {"user_ids": "all"}))["error"]["code"] == \
        "invalid"
    big = {"room_id": ROOM, "client_id": "c", "text": "x" * MAX_EVENT_BYTES}
    assert (await rig.event("message:send", big))["error"]["code"] == "too_large"
    assert (await rig.event("room:join", {"room_id": ROOM}))["error"]["code"] == "not_member"
    assert (await rig.event("typing", {"room_id": ROOM, "active": True}))["error"]["code"] == \
        "internal"
    assert (await rig.event("presence:subscribe", *SUBSCRIBE, sid="gone"))["error"][
        "code"] == "unavailable"
    assert rig.all_events() == {
        ("presence:subscribe", "ok"): 2, ("presence:subscribe", "invalid"): 1,
        ("message:send", "too_large"): 1, ("room:join", "not_member"): 1,
        ("typing", "internal"): 1, ("presence:subscribe", "unavailable"): 1}
    assert rig.acks("presence:subscribe") == 4
    assert rig.acks("message:send") == rig.acks("room:join") == rig.acks("typing") == 1


async def test_rate_limited_events_are_a_result(handlers: None) -> None:
    rig = Rig(burst=2)
    codes = [(await rig.event("presence:subscribe", *SUBSCRIBE)).get("error", {}).get("code")
             for _ in range(5)]
    assert codes == [None, None, "rate_limited", "rate_limited", "rate_limited"]
    assert rig.count("presence:subscribe", "ok") == 2
    assert rig.count("presence:subscribe", "rate_limited") == 3
    assert rig.acks("presence:subscribe") == 5


async def test_event_names_a_client_makes_up_are_unknown(handlers: None) -> None:
    rig = Rig()
    for event in ("no:such:event", "connect", "unknown", "x" * 10_000, 42, None, ["a"],
                  {"k": 1}):
        ack = await rig.event(event, {})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", event
    assert rig.all_events() == {("unknown", "invalid"): 8}
    assert rig.acks("unknown") == 8
    events = {s.labels["event"] for family in rig.registry.collect()
              for s in family.samples if "event" in s.labels}
    assert events == {*CLIENT_EVENTS, "unknown"}


def test_ack_time_lands_in_its_bucket() -> None:
    rig = Rig()
    rig.metrics.record("typing", acks.ok(), 0.0003)
    rig.metrics.record("typing", acks.ok(), 0.003)
    rig.metrics.record("typing", acks.ok(), 12.0)
    bucket = {le: rig.registry.get_sample_value(
        "hubbub_socket_ack_seconds_bucket", {"event": "typing", "le": le})
        for le in ("0.0005", "0.001", "0.005", "10.0", "+Inf")}
    assert bucket == {"0.0005": 1, "0.001": 1, "0.005": 2, "10.0": 2, "+Inf": 3}


def test_results_are_bounded() -> None:
    rig = Rig()
    for index in range(MAX_RESULTS + 10):
        rig.metrics.record("typing", acks.error(f"code_{index}", "x"), 0.001)
    rig.metrics.record("typing", {"ok": False}, 0.001)
    rig.metrics.record("typing", cast(Any, None), 0.001)
    results = {result for event, result in rig.all_events() if event == "typing"}
    # MAX_RESULTS labels with "ok" (none here), then "other" for the rest.
    assert len(results) == MAX_RESULTS and "other" in results
    assert rig.count("typing", "other") == 11 + 2


def test_recording_costs_microseconds() -> None:
    # Generous: a few microseconds on a quiet machine; this only catches a gross regression
    # (a label lookup or a string built per event costs more than the whole of it).
    rig = Rig()
    ok, refused = acks.ok(), acks.error("rate_limited", "slow down")
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        rig.metrics.record("message:send", ok, 0.001)
        rig.metrics.record("message:send", refused, 0.001)
    per_event = (time.perf_counter() - started) / (2 * rounds)
    assert per_event < 50e-6, per_event


# -- disconnects ----------------------------------------------------------------------------


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sids session.disconnect was called with (nothing else happens)."""
    seen: list[str] = []

    async def disconnect(gw: Gateway, sid: str) -> None:
        seen.append(sid)
        gw.connections.pop(sid, None)

    monkeypatch.setattr(session, "disconnect", disconnect)
    return seen


def namespace_of(rig: Rig) -> GatewayNamespace:
    sio = GatewayServer(async_mode="aiohttp", client_manager=LocalManager())
    rig.gw.sio = sio
    ns = GatewayNamespace(rig.gw, rig.metrics)
    sio.register_namespace(ns)
    return ns


@pytest.mark.parametrize(("reason", "label"), [
    ("client disconnect", "client_disconnect"),
    ("server disconnect", "server_disconnect"),
    ("ping timeout", "ping_timeout"),
    ("transport close", "transport_close"),
    ("transport error", "transport_error"),
    ("a reason from the future", "other"),
    (None, "other"),
])
async def test_disconnects_are_counted_by_reason(closed: list[str], reason: Any,
                                                 label: str) -> None:
    rig = Rig()
    ns = namespace_of(rig)
    args = ("s1",) if reason is None else ("s1", reason)
    await ns.trigger_event("disconnect", *args)
    assert closed == ["s1"]
    counted = {s.labels["reason"]: s.value for family in rig.registry.collect()
               if family.name == "hubbub_socket_disconnects" for s in family.samples
               if s.name.endswith("_total") and s.value}
    assert counted == {label: 1}


async def test_the_gateways_own_closes_are_told_apart(closed: list[str]) -> None:
    rig = Rig()
    ns = namespace_of(rig)
    rig.conn.expires_at = int(NOW)  # session.py closes it: its token expired
    await ns.trigger_event("disconnect", "s1", "server disconnect")
    assert rig.disconnects("token_expired") == 1
    rig.draining = True
    rig.gw.connections["s2"] = Connection("s2", "u1", int(NOW) + 60, TokenBucket(1, 1))
    await ns.trigger_event("disconnect", "s2", "server disconnect")
    assert rig.disconnects("shutdown") == 1
    # A socket this gateway no longer holds (a zombie already cleaned up) still counts.
    await ns.trigger_event("disconnect", "s3", "transport close")
    assert rig.disconnects("transport_close") == 1
    assert rig.disconnects("server_disconnect") == 0
    assert closed == ["s1", "s2", "s3"]


async def test_a_client_event_named_disconnect_is_an_event(closed: list[str]) -> None:
    rig = Rig()
    ns = namespace_of(rig)
    sid = await rig.gw.sio.manager.connect("e1", "/")
    rig.gw.connections[sid] = rig.conn
    ack = await ns.trigger_event("disconnect", sid, {})
    assert ack["error"]["code"] == "invalid" and closed == []
    assert rig.count("unknown", "invalid") == 1
    assert sum(rig.disconnects(r) for r in ("client_disconnect", "other")) == 0


# -- outbound queues --------------------------------------------------------------------------


def sockets(*sizes: int) -> list[Any]:
    made = []
    for size in sizes:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for item in range(size):
            queue.put_nowait(item)
        made.append(SimpleNamespace(queue=queue))
    return made


def test_queue_depths_are_a_gauge_histogram_and_a_max() -> None:
    histogram, deepest = queue_depths(sockets(0, 0, 1, 3, 4, 2000))
    samples = {(s.name, s.labels.get("le")): s.value for s in histogram.samples}
    assert histogram.type == "gaugehistogram"
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "0.0")] == 2
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "1.0")] == 3
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "2.0")] == 3
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "4.0")] == 5
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "1024.0")] == 5
    assert samples[("hubbub_socket_outbound_queue_depth_bucket", "+Inf")] == 6
    assert samples[("hubbub_socket_outbound_queue_depth_gcount", None)] == 6
    assert samples[("hubbub_socket_outbound_queue_depth_gsum", None)] == 2008
    assert deepest.samples[0].value == 2000
    empty, none = queue_depths([])
    assert {s.value for s in empty.samples} == {0} and none.samples[0].value == 0


# -- HTTP metrics of Socket.IO's requests ------------------------------------------------------


def http_app(spent: list[str]) -> web.Application:
    app = web.Application(middlewares=[http_only(metrics_middleware)])
    app[LIFECYCLE] = Lifecycle(node_id="n1")
    setup_metrics(app)

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def spend(request: web.Request, route: str) -> None:
        spent.append(route)
        if request.query.get("EIO") == "refused":
            raise RateLimited(3)

    app.router.add_get("/named", answer, name="test.named")
    app.router.add_get("/plain/{item}", answer)  # a matched route without a name
    attach(app, answer, app[METRICS], spend)  # as server/gateway/setup.py attaches Engine.IO
    return app


async def test_socket_io_requests_are_counted_not_timed() -> None:
    spent: list[str] = []
    app = http_app(spent)
    async with TestClient(TestServer(app)) as client:
        for path in ("/socket.io/?EIO=4&transport=polling", "/socket.io/?EIO=4&transport=polling",
                     "/socket.io/?EIO=4&transport=websocket", "/socket.io/?EIO=4",
                     "/socket.io/?EIO=4&transport=polling&sid=abc",  # no handshake: spends none
                     "/socket.io/elsewhere", "/named", "/plain/7", "/nowhere"):
            async with client.get(path) as response:
                await response.read()
        async with client.get("/socket.io/?EIO=refused&transport=polling") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "3"
            assert (await response.json())["code"] == "rate_limited"
        async with client.post("/named") as response:
            assert response.status == 405
        async with client.get("/metrics") as response:
            text = await response.text()
    registry = app[METRICS].registry

    def requests(route: str, method: str = "GET", status: str = "200") -> float:
        return registry.get_sample_value("hubbub_http_requests_total", {
            "method": method, "route": route, "status": status}) or 0.0

    assert requests("socket.io") == 5 and requests("socket.io", status="429") == 1
    assert spent == ["socket.io"] * 5
    assert requests("test.named") == 1 and requests("/plain/{item}") == 1
    assert requests("unmatched", status="404") == 2  # /nowhere, /socket.io/elsewhere
    assert requests("unmatched", "POST", "405") == 1
    transports = {t: registry.get_sample_value("hubbub_socketio_requests_total",
                                               {"transport": t})
                  for t in ("websocket", "polling", "other")}
    assert transports == {"websocket": 1, "polling": 4, "other": 1}
    timed = {s.labels["route"] for family in registry.collect()
             if family.name == "hubbub_http_request_duration_seconds" for s in family.samples}
    assert "socket.io" not in timed and {"test.named", "/plain/{item}", "unmatched"} <= timed
    assert 'route="unnamed"' not in text
    assert app[LIFECYCLE].requests_in_flight == 0
