"""Prometheus metrics of the Socket.IO gateway, on the app's registry (server.metrics).

Recorded as things happen, by GatewayNamespace (server/gateway/namespace.py):

- `hubbub_socket_events_total{event, result}`: every client event, once, in `dispatch` (the
  pipeline both the fast path, server/gateway/inbound.py, and python-socketio's path run).
  `event` is one of protocols.socket.CLIENT_EVENTS or "unknown" (whatever else a client
  sends), so a client cannot create label values; `result` is "ok" or the ack's error code
  (`invalid`, `rate_limited`, `too_large`, `not_member`, `unavailable`, `internal`, ...: the
  server's own constants).
- `hubbub_socket_ack_seconds{event}`: from the start of `dispatch` to the ack being ready, for
  every event, refused ones included (its `_count` per event is the sum of the counter's
  results).
- `hubbub_socket_disconnects_total{reason}`: every Socket.IO disconnect of "/", by
  python-socketio's reason (`client_disconnect`, `server_disconnect`, `ping_timeout`,
  `transport_close`, `transport_error`), with two of the gateway's own server closes told
  apart: `token_expired` and `shutdown` (the node is draining). `other`: anything else.

The label children of all of these are bound once and kept in dicts: an event costs two
clock reads, two dict lookups, a histogram observe and a counter increment.

Read at scrape time (SocketCollector): `hubbub_sockets_connected`, the bad frames, in a
cluster the room packets between nodes (`hubbub_room_packets_total{direction}`, `published` or
`received`, and `hubbub_room_packet_failures_total`), and the
outbound queues of this node's Engine.IO sockets: `hubbub_socket_outbound_queue_depth` (a
gauge histogram of the packets waiting in each socket's queue; `_gcount`: the sockets,
`_gsum`: the packets) and `hubbub_socket_outbound_queue_max_depth`. Packets are written to
websockets directly and queue only behind a handshake, an upgrade or a transport paused by
flow control (server/gateway/direct.py): a deep queue is a client that does not read.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from protocols.socket import CLIENT_EVENTS
from server.gateway.connections import Connection, Gateway

if TYPE_CHECKING:  # frames imports the fast path, which imports namespace, which imports us
    from server.gateway.frames import FrameGuard

OK = "ok"
UNKNOWN_EVENT = "unknown"
OTHER = "other"
# An event's distinct results are the server's error codes; should more than this many show
# up (a bug), the rest are counted as "other" rather than as new series.
MAX_RESULTS = 64
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0)
QUEUE_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# python-engineio's and python-socketio's reasons (engineio.base_server.BaseServer.reason).
DISCONNECT_REASONS = {
    "client disconnect": "client_disconnect",
    "server disconnect": "server_disconnect",
    "ping timeout": "ping_timeout",
    "transport close": "transport_close",
    "transport error": "transport_error",
}
TOKEN_EXPIRED = "token_expired"
SHUTDOWN = "shutdown"
_SERVER_DISCONNECT = DISCONNECT_REASONS["server disconnect"]


class _EventSeries:
    """The bound children of one event label."""

    __slots__ = ("_counter", "_name", "ack", "ok", "results")

    def __init__(self, counter: Counter, acks: Histogram, name: str) -> None:
        self._counter = counter
        self._name = name
        self.ack = acks.labels(name)
        self.ok = counter.labels(name, OK)
        self.results: dict[str, Any] = {OK: self.ok}

    def result(self, code: Any) -> Any:
        child = self.results.get(code) if type(code) is str else None
        if child is None:
            label = code if type(code) is str and len(self.results) < MAX_RESULTS else OTHER
            child = self.results.get(label)
            if child is None:
                child = self.results[label] = self._counter.labels(self._name, label)
        return child


class SocketMetrics:
    """The gateway's event and disconnect metrics (see the module's docstring)."""

    def __init__(self, registry: CollectorRegistry, *,
                 draining: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.time) -> None:
        self.events = Counter(
            "hubbub_socket_events", "Socket.IO client events handled, by event and result "
            "(ok or the ack's error code)", ["event", "result"], registry=registry)
        self.ack_seconds = Histogram(
            "hubbub_socket_ack_seconds", "Socket.IO client events: from the start of the "
            "gateway's pipeline to the ack being ready", ["event"], buckets=ACK_BUCKETS,
            registry=registry)
        self.disconnects = Counter(
            "hubbub_socket_disconnects", "Socket.IO connections closed, by reason",
            ["reason"], registry=registry)
        self._series = {name: _EventSeries(self.events, self.ack_seconds, name)
                        for name in (*CLIENT_EVENTS, UNKNOWN_EVENT)}
        self._unknown = self._series[UNKNOWN_EVENT]
        self._reasons = {label: self.disconnects.labels(label) for label in (
            *DISCONNECT_REASONS.values(), TOKEN_EXPIRED, SHUTDOWN, OTHER)}
        self._draining = draining
        self._clock = clock

    def record(self, event: Any, ack: Any, seconds: float) -> None:
        """One client event answered with `ack` after `seconds`."""
        series = self._series.get(event) if type(event) is str else None
        if series is None:
            series = self._unknown
        series.ack.observe(seconds)
        if type(ack) is not dict:
            series.result(None).inc()
        elif ack.get("ok") is True:
            series.ok.inc()
        else:
            error = ack.get("error")
            series.result(error.get("code") if type(error) is dict else None).inc()

    def disconnected(self, reason: Any, conn: Connection | None) -> None:
        """Socket.IO closed a socket of "/" for `reason` (the connection, if it was held)."""
        label = DISCONNECT_REASONS.get(reason, OTHER) if type(reason) is str else OTHER
        if label == _SERVER_DISCONNECT:
            if self._draining():
                label = SHUTDOWN
            elif conn is not None and conn.expires_at <= self._clock():
                label = TOKEN_EXPIRED  # session.py closes a socket once its token expired
        self._reasons[label].inc()


class SocketCollector(Collector):
    """The sockets this node holds, the bad frames they sent and their outbound queues, read
    at scrape time (one pass over the Engine.IO sockets per scrape, nothing per message)."""

    def __init__(self, gateway: Gateway, frames: FrameGuard, eio: Any) -> None:
        self._gateway = gateway
        self._frames = frames
        self._eio = eio

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("hubbub_sockets_connected",
                                "Authenticated Socket.IO connections on this node",
                                value=len(self._gateway.connections))
        yield CounterMetricFamily("hubbub_socket_bad_frames",
                                  "Frames that were not Socket.IO packets this server handles",
                                  value=self._frames.frames)
        yield CounterMetricFamily("hubbub_sockets_closed_for_bad_frames",
                                  "Sockets closed for sending bad frames",
                                  value=self._frames.closed)
        yield from queue_depths(self._eio.sockets.values())
        channels = self._gateway.room_channels
        if channels is not None:
            yield from room_packets(channels)


def room_packets(channels: Any) -> Iterator[Metric]:
    """What this node's room channels (storage/redis/room_channels.py) carried to and from the
    other nodes: each is one emit to a room that crossed Redis once."""
    packets = CounterMetricFamily("hubbub_room_packets",
                                  "Room packets this node published to the other nodes, or "
                                  "received from them and delivered", labels=["direction"])
    packets.add_metric(["published"], getattr(channels, "published", 0))
    packets.add_metric(["received"], getattr(channels, "received", 0))
    yield packets
    yield CounterMetricFamily("hubbub_room_packet_failures",
                              "Room packets Redis refused or lost after they were queued",
                              value=getattr(channels, "failures", 0))


def queue_depths(sockets: Any) -> Iterator[Metric]:
    """The outbound queue depth of each Engine.IO socket, as a gauge histogram and its max."""
    counts = [0] * (len(QUEUE_BUCKETS) + 1)  # the last: above the largest bucket
    total = deepest = 0
    for socket in list(sockets):
        size = socket.queue.qsize()
        if size:
            total += size
            if size > deepest:
                deepest = size
            counts[bisect_left(QUEUE_BUCKETS, size)] += 1
        else:
            counts[0] += 1
    buckets = []
    cumulative = 0
    for bound, count in zip((*QUEUE_BUCKETS, float("inf")), counts, strict=True):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    yield GaugeHistogramMetricFamily(
        "hubbub_socket_outbound_queue_depth",
        "Engine.IO sockets of this node by the packets waiting in their outbound queue",
        buckets=buckets, gsum_value=total)
    yield GaugeMetricFamily("hubbub_socket_outbound_queue_max_depth",
                            "Packets waiting in the deepest outbound queue of this node's "
                            "Engine.IO sockets", value=deepest)
