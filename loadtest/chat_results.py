"""What a run of the chat benchmark measured, added up: the workers' results of one send window
(`summarize` -> `Summary`), a `Window` (the fixed load or a peak-ladder step: its deliveries/s,
cores and whether it passes) and a `Load` (one run: the ramp, the server's memory, the fixed
load and the ladder). Shared by `make bench-chat` and `make bench-cluster`
(`make bench-disconnect` takes its `percentile`).

A level passes when at most MAX_FAILED of the sends failed or were not acked in time, at least
MIN_ACKED were acked, at least MIN_DELIVERED of the expected deliveries arrived and delivery
p99 <= P99_LIMIT_MS: the side-by-side benchmark's criteria. A client process busier than
CLIENT_CORE_LIMIT cores may have set the pace instead of the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from chat_client import WorkerResult
from chat_workers import DRAIN_SECONDS

SETTLE_SECONDS = 3.0  # after the last join, before the idle RSS (the side-by-side waits 3 s)
# A level passes with at most this share of failed sends and at least these shares acked and
# delivered, and with delivery p99 within the limit: the side-by-side benchmark's criteria.
MAX_FAILED = 0.001
MIN_ACKED = 0.99
MIN_DELIVERED = 0.99
P99_LIMIT_MS = 1000.0
CLIENT_CORE_LIMIT = 0.9  # a client process busier than this may have been the bottleneck


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- adding up ---------------------------------------------------------------------------------

@dataclass
class Shortfall:
    """An acked message that some connected members did not receive in the window."""

    sent_at: float  # seconds after the window opened
    room_id: str
    missing: dict[str, int]  # node url -> members there that did not receive it


@dataclass
class Summary:
    """The workers' results added up."""

    sent: int
    acked: int
    delivered: int
    expected: int  # every connected member of the room, the sender included, gets each acked
    failed_connects: int
    disconnects: int
    errors: dict[str, int]
    latencies_ms: list[float]
    shortfalls: list[Shortfall]


def _added(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for key, count in d.items():
            total[key] = total.get(key, 0) + count
    return total


def _shortfalls(results: list[WorkerResult], members: dict[str, int],
                start: float) -> list[Shortfall]:
    received = _added([r.received for r in results])
    urls = sorted({key.split(" ", 1)[1] for key in members})
    found = []
    for tag, room_id, sent in sorted((m for r in results for m in r.acked_sends),
                                     key=lambda m: m[2]):
        missing = {url: members.get(f"{room_id} {url}", 0) - received.get(f"{tag} {url}", 0)
                   for url in urls}
        if any(missing.values()):
            found.append(Shortfall(sent - start, room_id, missing))
    return found


def summarize(results: list[WorkerResult], start: float = 0.0) -> Summary:
    """`start`: when the send window opened (unix time), for the shortfalls' times."""
    members = _added([r.members for r in results])
    by_room: dict[str, int] = {}  # members connected, on any node
    for key, count in members.items():
        room_id = key.split(" ", 1)[0]
        by_room[room_id] = by_room.get(room_id, 0) + count
    return Summary(
        sent=sum(r.sent for r in results), acked=sum(r.acked for r in results),
        delivered=sum(r.delivered for r in results),
        expected=sum(by_room.get(room, 0) for r in results for _, room, _ in r.acked_sends),
        failed_connects=sum(r.failed_connects for r in results),
        disconnects=sum(r.disconnects for r in results), errors=_added([r.errors for r in results]),
        latencies_ms=[v for r in results for v in r.latencies_ms],
        shortfalls=_shortfalls(results, members, start))


# -- what a run measured -----------------------------------------------------------------------

@dataclass
class Window:
    """One send window in every worker: the fixed load or a ladder step. CPU is summed over
    the servers and taken from the "go" to the last result (lead-in, window, drain)."""

    seconds: float
    rate: float  # messages/s per client
    start: float  # unix time the sends started
    results: list[WorkerResult]
    server_cpu_s: float
    pg_cpu_s: float | None  # None: not measured

    @cached_property
    def total(self) -> Summary:
        return summarize(self.results, self.start)

    @property
    def deliveries_per_s(self) -> float:
        return self.total.delivered / self.seconds

    @property
    def loaded_seconds(self) -> float:
        """From the window's start to its last ack (or ack timeout) in any worker: the span
        over which the server's and Postgres's cores are averaged (an overloaded level acks
        late, and dividing by the window alone would overstate its cores)."""
        return max([self.seconds, *(r.busy_seconds for r in self.results)])

    def cores(self, cpu_seconds: float | None) -> float | None:
        """`cpu_seconds` spent over this level, in cores (None: not measured)."""
        return cpu_seconds / self.loaded_seconds if cpu_seconds is not None else None

    @property
    def client_cores(self) -> list[float]:
        """Each worker process's CPU while it sent, in cores."""
        return [r.cpu_seconds / r.busy_seconds if r.busy_seconds else 0.0
                for r in self.results]

    @property
    def client_limited(self) -> bool:
        return any(cores > CLIENT_CORE_LIMIT for cores in self.client_cores)

    @cached_property
    def why_not(self) -> list[str]:
        """Why this level does not pass; empty when it passes."""
        total = self.total
        failed = sum(total.errors.values())  # error answers and ack timeouts
        p99 = percentile(total.latencies_ms, 0.99)
        why = []
        if not total.sent:
            why.append("nothing sent")
        if failed > MAX_FAILED * total.sent:
            why.append(f"{failed} sends failed or timed out")
        if total.acked < MIN_ACKED * total.sent:
            why.append(f"acked {total.acked}/{total.sent}")
        if total.delivered < MIN_DELIVERED * total.expected:
            why.append(f"delivered {total.delivered}/{total.expected}")
        if math.isnan(p99) or p99 > P99_LIMIT_MS:
            why.append(f"p99 {p99:.0f} ms")
        return why

    @property
    def passed(self) -> bool:
        return not self.why_not


@dataclass
class Load:
    """What one run of the workers measured; memory and CPU are summed over the servers."""

    connected: int
    ramp: float  # seconds from starting the workers to every client joined
    ramp_cpu_s: float  # server CPU over the ramp
    ramp_pg_cpu_s: float | None  # its Postgres backends' CPU over the ramp; None: not measured
    rss_before: int
    rss_connected: int  # SETTLE_SECONDS after the last join
    rss_end: int  # after the last window, clients still connected
    fixed: Window
    steps: list[Window] = field(default_factory=list)  # the peak ladder, in order
    at_half_peak: Window | None = None  # a window at half the best level's rate

    @property
    def results(self) -> list[WorkerResult]:
        return self.fixed.results

    @property
    def cpu_seconds(self) -> float:
        return self.fixed.server_cpu_s

    @property
    def window(self) -> tuple[float, float]:
        """Unix times of the fixed load: sends start, drain ends."""
        return self.fixed.start, self.fixed.start + self.fixed.seconds + DRAIN_SECONDS
