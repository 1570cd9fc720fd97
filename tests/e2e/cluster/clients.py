"""Chat clients that survive a cluster losing nodes, the way a real client does.

- `ChatClient.send_until_acked`: send with a client_id and, when the ack does not come (the
  socket dropped, the node died, the cluster answered unavailable / timeout / busy), send again
  with the SAME client_id until one ack says ok; the server's idempotency per client_id makes
  every retry return the first message.
- `ChatClient.reconnect`: when its socket dropped, connect to ANOTHER serving node and rejoin
  the room with since_seq = the last seq it saw in order, taking the replayed `missed`.

Each socket a client had is a `Session` that keeps what it received live (message:new) and
what its joins replayed, so a test can check the whole history afterwards (`check_history`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from tests.e2e.live import Live
from tests.support.accounts import Account, signup
from tests.support.cluster import HubbubCluster

# Server-side asks time out after 5 s; give the ack a little longer than that.
ACK_TIMEOUT = 8.0
SEND_DEADLINE = 45.0  # one message, all its retries included
CONNECT_DEADLINE = 30.0
# Error codes after which a retry with the same client_id is what a client should do.
RETRYABLE = frozenset({"unavailable", "timeout", "busy", "internal", "rate_limited", "no_ack"})
RETRY_BACKOFF = 0.1  # seconds before a retry when the server gave no retry_after
REPLAY_CAP = 500  # actors/room.py RoomActor.REPLAY_CAP: a join replays at most this many


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set, `seconds` at most."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


class Dropped(Exception):
    """The socket went away before the ack came."""


async def call_live(live: Live, event: str, data: Any, timeout: float = ACK_TIMEOUT) -> Any:
    """Emit with an ack; raise Dropped as soon as the socket disconnects (python-socketio
    would otherwise wait for the full timeout). A missing ack is {ok: false, no_ack}."""
    if live.disconnected.is_set() or not live.client.connected:
        raise Dropped(event)
    call = asyncio.ensure_future(live.call(event, data, timeout=timeout))
    gone = asyncio.ensure_future(live.disconnected.wait())
    try:
        done, _ = await asyncio.wait({call, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if call not in done:
        call.cancel()
        raise Dropped(event)
    try:
        return call.result()
    except socketio.exceptions.TimeoutError:
        return {"ok": False, "error": {"code": "no_ack", "message": f"no ack in {timeout}s"}}
    except socketio.exceptions.SocketIOError as exc:
        raise Dropped(event) from exc


@dataclass
class Session:
    """One socket of a client: where, what its join(s) replayed, what arrived live."""

    node: int
    live: Live
    since: int | None = None
    last_seq: int = 0
    missed: list[int] = field(default_factory=list)
    # Later joins on the same socket (gap repair): (since, last_seq, replayed seqs)
    repairs: list[tuple[int, int, list[int]]] = field(default_factory=list)
    live_seqs: list[int] = field(default_factory=list)
    scanned: int = 0

    @property
    def gone(self) -> bool:
        return self.live.disconnected.is_set() or not self.live.client.connected

    def live_gaps(self) -> list[tuple[int, int]]:
        """Consecutive live deliveries that skipped seqs: [(before, after)]."""
        return [(a, b) for a, b in itertools.pairwise(self.live_seqs)
                if b != a + 1]


class ChatClient:
    """One user in one room, reconnecting and resending through node failures."""

    def __init__(self, cluster: HubbubCluster, account: Account, room_id: str,
                 name: str = "") -> None:
        self.cluster = cluster
        self.account = account
        self.room_id = room_id
        self.name = name or account.username
        self.sessions: list[Session] = []
        self.messages: dict[int, dict[str, Any]] = {}  # seq -> message, from anywhere
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []  # same seq, two ids
        self.acked: dict[str, dict[str, Any]] = {}  # client_id -> message
        self.attempts: dict[str, int] = {}  # client_id -> sends until acked
        self.errors: Counter[str] = Counter()
        self.reconnects = 0
        self._lock = asyncio.Lock()  # one (re)connect at a time
        self.stopped = asyncio.Event()  # set by `stop`: pauses and paced sends end at once

    def stop(self) -> None:
        self.stopped.set()

    async def back_off(self, retry_after: float | None = None, cap: float | None = None) -> None:
        """The pause before a retry that the API asks of clients: the server's retry_after
        (RETRY_BACKOFF when it names none), at most `cap`; it ends early once the client is
        stopped. Not a wait for something to happen: the retry that follows checks."""
        pause = retry_after or RETRY_BACKOFF
        await _wait(self.stopped, pause if cap is None else min(pause, cap))

    # -- what it has seen --------------------------------------------------------------------

    @property
    def session(self) -> Session:
        return self.sessions[-1]

    @property
    def live(self) -> Live:
        return self.session.live

    def _keep(self, message: dict[str, Any]) -> None:
        known = self.messages.get(message["seq"])
        if known is None:
            self.messages[message["seq"]] = message
        elif known["id"] != message["id"]:
            self.conflicts.append((known, message))

    def scan(self) -> None:
        """Take in what arrived on every socket since the last scan."""
        for session in self.sessions:
            received = session.live.received
            while session.scanned < len(received):
                event, data = received[session.scanned]
                session.scanned += 1
                if event == "message:new" and data["message"]["room_id"] == self.room_id:
                    session.live_seqs.append(data["message"]["seq"])
                    self._keep(data["message"])

    def watermark(self) -> int:
        """The last seq seen with every seq before it seen too."""
        self.scan()
        seq = 0
        while seq + 1 in self.messages:
            seq += 1
        return seq

    def max_seen(self) -> int:
        self.scan()
        return max(self.messages, default=0)

    # -- connecting --------------------------------------------------------------------------

    async def connect(self, node: int, *, since: int | None = None,
                      deadline: float = CONNECT_DEADLINE) -> Session:
        """Connect to `node` (or, when it refuses, another serving node) and join the room,
        replaying after `since` when given."""
        end = time.monotonic() + deadline
        while True:
            if time.monotonic() > end:
                raise TimeoutError(f"{self.name} could not connect and join within "
                                   f"{deadline}s (errors: {dict(self.errors)})")
            if node not in self.cluster.up:
                node = self.cluster.other_up(node)
            try:
                live = await Live.connect(self.cluster.url(node), self.account.token)
            except socketio.exceptions.ConnectionError:
                self.errors["connect_refused"] += 1
                node = self.cluster.other_up(node)
                await self.back_off()
                continue
            session = Session(node=node, live=live, since=since)
            self.sessions.append(session)
            try:
                await self._join(session, since, end)
            except Dropped:
                self.errors["dropped_joining"] += 1
                with contextlib.suppress(Exception):
                    await live.close()
                node = self.cluster.other_up(node)
                continue
            return session

    async def _join(self, session: Session, since: int | None, end: float) -> None:
        payload: dict[str, Any] = {"room_id": self.room_id}
        if since is not None:
            payload["since_seq"] = since
        while True:
            ack = await call_live(session.live, "room:join", payload)
            if ack.get("ok"):
                break
            code = ack["error"]["code"]
            self.errors[f"join:{code}"] += 1
            if code not in RETRYABLE or time.monotonic() > end:
                raise AssertionError(f"{self.name} room:join refused: {ack}")
            await self.back_off(ack["error"].get("retry_after"))
        session.last_seq = ack["last_seq"]
        replayed = ack["missed"]
        for message in replayed:
            self._keep(message)
        session.missed = [m["seq"] for m in replayed]
        # A join replays REPLAY_CAP messages at most: ask for the rest.
        while since is not None and len(replayed) == REPLAY_CAP and \
                session.missed[-1] < session.last_seq:
            more = await call_live(session.live, "room:join",
                                   {"room_id": self.room_id, "since_seq": session.missed[-1]})
            assert more.get("ok"), more
            replayed = more["missed"]
            for message in replayed:
                self._keep(message)
            session.missed += [m["seq"] for m in replayed]

    async def reconnect(self) -> Session:
        """Drop the current socket (if still open) and rejoin on another serving node with
        since_seq = the watermark."""
        old = self.session
        async with self._lock:
            if self.session is not old:
                return self.session  # reconnected by another task while we waited
            with contextlib.suppress(Exception):
                await old.live.close()
            self.reconnects += 1
            return await self.connect(self.cluster.other_up(old.node), since=self.watermark())

    async def ensure_connected(self) -> None:
        if self.session.gone:
            await self.reconnect()

    async def catch_up(self) -> list[int]:
        """Join again on the current socket with since_seq = the watermark (a gap in what
        arrived live); returns the seqs replayed."""
        while True:
            await self.ensure_connected()
            since = self.watermark()
            try:
                ack = await call_live(self.live, "room:join",
                                      {"room_id": self.room_id, "since_seq": since})
            except Dropped:
                continue
            if not ack.get("ok"):
                self.errors[f"join:{ack['error']['code']}"] += 1
                await self.back_off(ack["error"].get("retry_after"))
                continue
            for message in ack["missed"]:
                self._keep(message)
            seqs = [m["seq"] for m in ack["missed"]]
            self.session.repairs.append((since, ack["last_seq"], seqs))
            return seqs

    # -- sending -----------------------------------------------------------------------------

    async def send_until_acked(self, text: str, client_id: str | None = None, *,
                               deadline: float = SEND_DEADLINE) -> dict[str, Any]:
        client_id = client_id or f"{self.name}-{uuid.uuid4().hex[:8]}"
        end = time.monotonic() + deadline
        attempts = 0
        while True:
            if time.monotonic() > end:
                raise TimeoutError(f"{self.name}: {client_id} not acked within {deadline}s "
                                   f"after {attempts} attempts (errors: {dict(self.errors)})")
            if self.session.gone:
                await self.reconnect()
                continue
            attempts += 1
            try:
                ack = await call_live(self.live, "message:send", {
                    "room_id": self.room_id, "client_id": client_id, "text": text})
            except Dropped:
                self.errors["dropped"] += 1
                continue  # the loop reconnects
            if ack.get("ok"):
                message = ack["message"]
                assert message["client_id"] == client_id, (client_id, message)
                self._keep(message)
                self.acked[client_id] = message
                self.attempts[client_id] = attempts
                return message
            error = ack["error"]
            self.errors[error["code"]] += 1
            if error["code"] not in RETRYABLE:
                raise AssertionError(f"{self.name}: {client_id} refused: {ack}")
            await self.back_off(error.get("retry_after"), cap=1.0)

    async def send_many(self, count: int | None, *, stop: asyncio.Event | None = None,
                        interval: float = 0.0) -> None:
        """Send `count` messages one after the other (or until `stop` is set), each until
        acked. `interval` paces the load (seconds between one ack and the next send); `stop`
        (or `ChatClient.stop`) ends it, the pace included."""
        until = stop or self.stopped
        sent = 0
        while (count is None or sent < count) and not until.is_set():
            message = await self.send_until_acked(f"{self.name} #{sent}",
                                                  f"{self.name}-{sent}")
            assert message["text"] == f"{self.name} #{sent}"
            sent += 1
            if interval:
                await _wait(until, interval)

    async def settle(self, n: int, deadline: float) -> int:
        """Wait until the last seq `n` arrived; then fill any gap with since_seq. Returns the
        number of seqs that had to be filled that way."""
        end = time.monotonic() + deadline
        while True:
            arrived = len(self.live.received)  # before the scan: what comes later wakes us
            if self.max_seen() >= n:
                break
            if self.session.gone:
                await self.reconnect()
                continue
            if time.monotonic() > end:
                break  # let the repair below (and the checks after it) tell what is missing
            await self.live.arrivals_beyond(arrived, end - time.monotonic())
        filled = 0
        if self.watermark() < n:
            before = set(self.messages)
            await self.catch_up()
            filled = len(set(self.messages) - before)
        return filled

    async def close(self) -> None:
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await session.live.close()


async def new_users(http: aiohttp.ClientSession, count: int, prefix: str) -> list[Account]:
    return list(await asyncio.gather(*(signup(http, prefix) for _ in range(count))))


async def create_group(http: aiohttp.ClientSession, owner: Account, members: list[Account],
                       name: str = "cluster room") -> str:
    async with http.post("/v1/rooms", headers=owner.auth, json={
            "kind": "group", "member_ids": [m.id for m in members], "name": name}) as response:
        assert response.status in (200, 201), await response.text()
        return (await response.json())["id"]


class Rest:
    """One aiohttp session per node (base_url set), opened on first use."""

    def __init__(self, cluster: HubbubCluster) -> None:
        self.cluster = cluster
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def on(self, node: int) -> aiohttp.ClientSession:
        if node not in self._sessions:
            # No keep-alive: a node may be restarted on the same port between two requests.
            self._sessions[node] = aiohttp.ClientSession(
                base_url=self.cluster.url(node),
                connector=aiohttp.TCPConnector(force_close=True))
        return self._sessions[node]

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
