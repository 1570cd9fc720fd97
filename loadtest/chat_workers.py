"""The client processes of `make bench-chat` (and `make bench-cluster`): each runs a share of
the seats as bare Socket.IO clients (chat_client.py: python-socketio's client costs too much
CPU for a thousand of them on the machine that also runs the server), and `Workers`, in the
benchmark's process, starts them and drives them window by window.

A worker is `python loadtest/chat_workers.py <plan.json>` (a WorkerPlan: its seats). It
connects every seat with its token and joins its room, CONNECT_CONCURRENCY handshakes at a
time. Then the protocol, one line each way: the worker prints "ready <connected>" once its
clients are connected and joined; then for each "go <start> <seconds> <rate>" (unix start
time, shared by every worker) it sends for that window, waits out the drain and prints that
window's WorkerResult as one JSON line; "done" (or the end of its input) closes its clients and
ends it.

In a window every client sends `message:send` at `rate` messages per second (evenly spaced,
random phase), the send time in the text; each `message:new` received gives a delivery latency
(receive time - send time, one clock: same machine). Deliveries are counted within the window
plus DRAIN_SECONDS; a send not acked within ACK_TIMEOUT counts as failed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING

import aiohttp
import uvloop
from chat_client import Client, Seat, WorkerPlan, WorkerResult
from harness import ROOT, tail

if TYPE_CHECKING:
    from bench_chat import Options

CONNECT_CONCURRENCY = 50  # handshakes in flight per worker during the ramp-up
START_LEAD = 1.0  # a window starts this far ahead of its "go": every worker gets it first
DRAIN_SECONDS = 3.0  # after each send window, for deliveries still in flight
ACK_TIMEOUT = 10.0  # a send not acked by then counts as failed (as in the side-by-side)
WORKER_DEADLINE = 120.0  # beyond a window (or the ramp): a silent worker is killed


# -- the worker: connect, then one send window per "go" line ----------------------------------

async def _connect_all(session: aiohttp.ClientSession, seats: list[Seat],
                       joined: WorkerResult) -> list[Client]:
    """Connect and join every seat, CONNECT_CONCURRENCY at a time; the failures are counted
    in `joined`, the clients that made it are returned."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(client: Client) -> Client | None:
        async with gate:
            try:
                await client.connect(session)
                return client
            except Exception as exc:
                joined.failed_connects += 1
                print(f"connect failed: {exc!r}"[:300], file=sys.stderr)
                await client.close()
                return None

    clients = [Client(seat, joined) for seat in seats]
    live = [c for c in await asyncio.gather(*(connect(c) for c in clients)) if c]
    joined.connected = len(live)
    for client in live:
        joined.joined(client.seat)
    return live


async def _stdin_lines() -> asyncio.StreamReader:
    """Stdin as an asyncio stream: a read that times out leaves no thread blocked behind."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _next_window(commands: asyncio.StreamReader) -> tuple[float, float, float] | None:
    """The parent's next command: (start, seconds, rate) for "go", None for "done" or the end
    of input (the parent is gone). Waits WORKER_DEADLINE at most."""
    line = (await asyncio.wait_for(commands.readline(), WORKER_DEADLINE)).decode()
    words = line.split()
    if not words or words[0] == "done":
        return None
    if words[0] != "go" or len(words) != 4:
        raise ValueError(f"unexpected command {line!r}")
    return float(words[1]), float(words[2]), float(words[3])


async def _send_window(live: list[Client], joined: WorkerResult, start: float, seconds: float,
                       rate: float) -> WorkerResult:
    """One window on every live client, into a fresh result (the members carried over, for
    the expected deliveries); returns after the drain."""
    result = WorkerResult(connected=joined.connected, failed_connects=joined.failed_connects,
                          members=dict(joined.members))
    for client in live:
        client.result = result
        client.window = (start, start + seconds)
    # No cyclic collection inside the window: a full one walks every client's objects and the
    # results so far, and stalled this process 90-100 ms at the same moment of every run (gc
    # callbacks): all latencies it saw then were its own, and they set the p99. Reference
    # counting still frees nearly everything; what the window left in cycles goes after it.
    gc.collect()
    gc.disable()
    try:
        cpu_before = time.process_time()
        await asyncio.gather(*(c.send_for(start, seconds, rate, ACK_TIMEOUT) for c in live))
        result.cpu_seconds = time.process_time() - cpu_before
        result.busy_seconds = max(0.0, time.time() - start)
        await asyncio.sleep(max(0.0, start + seconds + DRAIN_SECONDS - time.time()))
    finally:
        gc.enable()
    return result


async def run_worker(plan: WorkerPlan) -> None:
    joined = WorkerResult()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        live = await _connect_all(session, plan.seats, joined)
        commands = await _stdin_lines()
        print(f"ready {len(live)}", flush=True)
        try:
            while (window := await _next_window(commands)) is not None:
                result = await _send_window(live, joined, *window)
                print(json.dumps(asdict(result)), flush=True)
        finally:
            await asyncio.gather(*(c.close() for c in live))


def worker_main(plan_path: str) -> None:
    raw = json.loads(Path(plan_path).read_text())
    plan = WorkerPlan(**{**raw, "seats": [Seat(**s) for s in raw["seats"]]})
    # uvloop, as the server runs: the clients share the machine's cores with the servers,
    # and it cut each client process's CPU by a fifth (0.26 -> 0.21 cores, 1,000 clients at
    # 0.5 msg/s over two nodes), CPU the servers under test get back.
    uvloop.run(run_worker(plan))


# -- the parent: start the workers, drive them over the protocol -------------------------------

class Workers:
    """The client processes of one run, driven over the line protocol above. Every read has a
    deadline; `kill()` ends whatever is still running."""

    def __init__(self, options: Options, seats: list[Seat], workdir: Path) -> None:
        self.options = options
        self.seats = seats
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._lines: list[queue.Queue[str]] = []

    def start(self) -> None:
        for index in range(self.options.procs):
            plan = WorkerPlan(seats=self.seats[index::self.options.procs],
                              seconds=self.options.seconds, rate=self.options.rate)
            plan_path = self.workdir / f"plan-{index}.json"
            plan_path.write_text(json.dumps(asdict(plan)))
            with (self.workdir / f"worker-{index}.log").open("wb") as errors:
                proc = subprocess.Popen(
                    [sys.executable, __file__, str(plan_path)], cwd=ROOT,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
            self.procs.append(proc)
            # A reader thread per worker: the parent can then wait for a line with a deadline.
            lines: queue.Queue[str] = queue.Queue()
            assert proc.stdout is not None
            threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
            self._lines.append(lines)

    def _line(self, index: int, deadline: float) -> str:
        try:
            line = self._lines[index].get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"worker {index} silent past its deadline:\n"
                               + tail(self.workdir / f"worker-{index}.log", 10)) from None
        if not line:
            raise RuntimeError(f"worker {index} ended early:\n"
                               + tail(self.workdir / f"worker-{index}.log", 10))
        return line

    def _tell(self, command: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{command}\n".encode())
            proc.stdin.flush()

    def await_connected(self) -> int:
        """Each worker's "ready N": all its clients connected (or failed)."""
        deadline = time.monotonic() + WORKER_DEADLINE
        connected = 0
        for index in range(len(self.procs)):
            line = self._line(index, deadline)
            if not line.startswith("ready "):
                raise RuntimeError(f"worker {index} did not connect: {line[:200]}")
            connected += int(line.split()[1])
        return connected

    def run_window(self, seconds: float, rate: float) -> tuple[float, list[WorkerResult]]:
        """One send window in every worker at once; (its unix start time, their results)."""
        start = time.time() + START_LEAD
        self._tell(f"go {start!r} {seconds!r} {rate!r}")
        deadline = time.monotonic() + START_LEAD + seconds + DRAIN_SECONDS + WORKER_DEADLINE
        return start, [WorkerResult(**json.loads(self._line(index, deadline)))
                       for index in range(len(self.procs))]

    def close(self) -> None:
        """Say "done": the workers close their clients and exit; a failed one is an error."""
        self._tell("done")
        for proc in self.procs:
            proc.wait(timeout=WORKER_DEADLINE)
            if proc.returncode != 0:
                raise RuntimeError(f"a worker failed ({proc.returncode})")

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _pump(stream: IO[bytes], lines: queue.Queue[str]) -> None:
    for raw in stream:
        lines.put(raw.decode())
    lines.put("")  # end of output


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: chat_workers.py <plan.json> (started by bench_chat's Workers)")
    worker_main(sys.argv[1])
