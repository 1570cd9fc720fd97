"""A minimal Socket.IO client for `make bench-chat` and `make bench-cluster`: an aiohttp
websocket speaking the Engine.IO / Socket.IO framing by hand, light enough to run hundreds per
process."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Seat:
    token: str
    room_id: str
    url: str = ""  # the node this client connects to (a cluster spreads its clients)


@dataclass
class WorkerPlan:
    seats: list[Seat]
    seconds: float
    rate: float


@dataclass
class WorkerResult:
    connected: int = 0
    failed_connects: int = 0
    sent: int = 0
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    delivered: int = 0  # message:new received for messages sent in the window
    latencies_ms: list[float] = field(default_factory=list)
    disconnects: int = 0
    # Accounting per message, so that a lost delivery is told apart from a member that never
    # connected, and located by node. "<room id> <node url>" -> members connected there;
    # (tag, room id, send time) of each acked message; "<tag> <node url>" -> receipts.
    members: dict[str, int] = field(default_factory=dict)
    acked_sends: list[tuple[str, str, float]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    # The worker process's own CPU while it sent (window start to the last ack or timeout),
    # and that span: near one core, the client and not the server may have set the pace.
    cpu_seconds: float = 0.0
    busy_seconds: float = 0.0

    def joined(self, seat: Seat) -> None:
        key = f"{seat.room_id} {seat.url}"
        self.members[key] = self.members.get(key, 0) + 1


# -- the worker: bare Engine.IO/Socket.IO clients ---------------------------------------------

class Client:
    """One socket: `40{auth}` to connect, `42<id>[event, data]` to emit with an ack, answers
    Engine.IO pings (`2` -> `3`), records `message:new` latencies and acks."""

    def __init__(self, seat: Seat, result: WorkerResult) -> None:
        self.seat = seat
        self.result = result
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.window: tuple[float, float] = (0.0, 0.0)  # send times counted, unix seconds
        self.reader: asyncio.Task[None] | None = None
        self.closing = False

    async def connect(self, session: aiohttp.ClientSession) -> None:
        ws = await session.ws_connect(f"{self.seat.url}/socket.io/?EIO=4&transport=websocket",
                                      max_msg_size=0, autoping=True)
        self.ws = ws
        opening = await ws.receive_str(timeout=30)
        assert opening.startswith("0{"), opening
        await ws.send_str("40" + json.dumps({"token": self.seat.token}))
        answer = await ws.receive_str(timeout=30)
        if not answer.startswith("40"):
            raise ConnectionError(f"refused: {answer[:200]}")
        self.reader = asyncio.get_running_loop().create_task(self._read())
        ack = await self.emit("room:join", {"room_id": self.seat.room_id})
        if not ack.get("ok"):
            raise ConnectionError(f"room:join refused: {ack}")

    async def emit(self, event: str, data: Any, timeout: float = 30) -> Any:
        assert self.ws is not None
        self.next_id += 1
        ack_id = self.next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ack_id] = future
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, data]))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self.pending.pop(ack_id, None)

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = frame.data
            if data == "2":
                await self.ws.send_str("3")
            elif data.startswith("42["):
                event, payload = json.loads(data[2:])
                if event == "message:new":
                    self._delivered(payload["message"]["text"])
            elif data.startswith("43"):
                bracket = data.index("[")
                future = self.pending.get(int(data[2:bracket]))
                if future is not None and not future.done():
                    future.set_result(json.loads(data[bracket:])[0])
            elif data.startswith("1") or data.startswith("41"):
                break
        if not self.closing:
            self.result.disconnects += 1  # the server hung up on us

    def _delivered(self, text: str) -> None:
        stamp, tag = text.split(" ", 1)
        sent_ns = int(stamp)
        sent = sent_ns / 1e9
        if self.window[0] <= sent < self.window[1]:
            self.result.delivered += 1
            self.result.latencies_ms.append((time.time_ns() - sent_ns) / 1e6)
            key = f"{tag} {self.seat.url}"
            self.result.received[key] = self.result.received.get(key, 0) + 1

    async def send_for(self, start: float, seconds: float, rate: float,
                       ack_timeout: float = 30.0) -> None:
        """Send at `rate` per second from a random phase, until start + seconds; a send not
        acked within `ack_timeout` counts as a TimeoutError."""
        interval = 1.0 / rate
        due = start + random.random() * interval
        end = start + seconds
        sends = []
        while due < end:
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load, not synchronising a test
            # Stamped here, and not sent once the window is over (a sleep overshoots): a
            # message stamped past the end would be acked while its deliveries go uncounted.
            sent_ns = time.time_ns()
            if sent_ns / 1e9 >= end:
                break
            sends.append(asyncio.ensure_future(self._send_one(sent_ns, ack_timeout)))
            due += interval
        if sends:
            await asyncio.gather(*sends)

    async def _send_one(self, sent_ns: int, ack_timeout: float) -> None:
        # The window this send belongs to: a worker running several windows gives its clients
        # a fresh result for each, and a late ack must not count in the next one.
        result = self.result
        result.sent += 1
        tag = uuid.uuid4().hex[:8]
        text = f"{sent_ns} {tag}"
        try:
            ack = await self.emit("message:send", {"room_id": self.seat.room_id,
                                                   "client_id": uuid.uuid4().hex, "text": text},
                                  timeout=ack_timeout)
        except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
            code = type(exc).__name__
        else:
            if ack.get("ok"):
                result.acked += 1
                result.acked_sends.append((tag, self.seat.room_id, sent_ns / 1e9))
                return
            code = ack.get("error", {}).get("code", "unknown")
        result.errors[code] = result.errors.get(code, 0) + 1

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
