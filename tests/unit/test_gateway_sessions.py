"""The gateway's side of session records, with fakes for Socket.IO and the actor system:
records are written around SessionOpened / SessionClosed in the right order, a storage
failure refuses the socket, and RecordedSessions (the SessionDirectory) trusts only records
of live nodes and sockets this node really holds."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import socketio

from actors.errors import ActorStopped
from actors.system import ActorSystem
from protocols.socket import AuthRefresh
from protocols.user_messages import SessionClosed, SessionOpened
from server.auth.principal import Principal
from server.gateway import session
from server.gateway.connections import Connection, Gateway
from server.gateway.limits import TokenBucket
from server.gateway.session import RecordedSessions
from storage.errors import StorageError
from storage.memory.sessions import MemorySessionRecords

NODE = "node-a"
ANN = "user-ann"


@dataclass
class FakeEngineSocket:
    closed: bool = False


@dataclass
class FakeEngine:
    sockets: dict[str, FakeEngineSocket] = field(default_factory=dict)


@dataclass
class FakeManager:
    eio_sids: dict[str, str] = field(default_factory=dict)

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None:
        return self.eio_sids.get(sid)


@dataclass
class FakeSio:
    manager: FakeManager = field(default_factory=FakeManager)
    eio: FakeEngine = field(default_factory=FakeEngine)
    rooms: list[tuple[str, str]] = field(default_factory=list)

    async def enter_room(self, sid: str, room: str) -> None:
        self.rooms.append((sid, room))

    def transport(self, sid: str) -> FakeEngineSocket:
        """Give socket `sid` an Engine.IO transport, as python-socketio does before connect."""
        self.manager.eio_sids[sid] = f"eio-{sid}"
        return self.eio.sockets.setdefault(f"eio-{sid}", FakeEngineSocket())


class RecordingRecords(MemorySessionRecords):
    """Memory records that log every write into a shared journal (to check the order of
    writes and tells), and can fail."""

    def __init__(self, journal: list[tuple[str, str]]) -> None:
        super().__init__()
        self.journal = journal
        self.failing = False

    async def add(self, user_id: str, session_id: str, node_id: str) -> None:
        if self.failing:
            raise StorageError("redis is down")
        self.journal.append(("add", session_id))
        await super().add(user_id, session_id, node_id)

    async def remove(self, user_id: str, session_id: str, node_id: str) -> None:
        if self.failing:
            raise StorageError("redis is down")
        self.journal.append(("remove", session_id))
        await super().remove(user_id, session_id, node_id)


@dataclass
class FakeRef:
    journal: list[tuple[str, str]]
    stopped: bool

    async def tell(self, message: Any) -> None:
        if self.stopped:
            raise ActorStopped("stopping")
        match message:
            case SessionOpened(session_id=sid):
                self.journal.append(("opened", sid))
            case SessionClosed(session_id=sid):
                self.journal.append(("closed", sid))


@dataclass
class FakeSystem:
    journal: list[tuple[str, str]]
    stopped: bool = False

    def ref(self, actor_class: type, key: str) -> FakeRef:
        return FakeRef(self.journal, self.stopped)


@dataclass
class Harness:
    gw: Gateway
    sio: FakeSio
    records: RecordingRecords
    system: FakeSystem
    journal: list[tuple[str, str]]

    async def settled(self) -> None:
        """Wait for the gateway's background tasks (a zombie's close runs in one)."""
        await asyncio.gather(*list(self.gw._tasks))

    def held(self, sid: str, user_id: str = ANN) -> Connection:
        """A socket this node holds, recorded as the gateway records it."""
        conn = Connection(sid=sid, user_id=user_id, expires_at=int(time.time()) + 60,
                          bucket=TokenBucket(10, 10))
        self.gw.connections[sid] = conn
        self.sio.transport(sid)
        return conn


@pytest.fixture
async def h() -> Any:
    journal: list[tuple[str, str]] = []
    sio = FakeSio()
    system = FakeSystem(journal)
    gw = Gateway(sio=cast(socketio.AsyncServer, sio), system=cast(ActorSystem, system),
                 node_id=NODE, events_per_second=10, event_burst=10)
    gw.authenticate = lambda token: Principal(user_id=ANN, role="user", token_id="t",
                                              expires_at=int(time.time()) + 60)
    records = RecordingRecords(journal)
    gw.sessions_store = records
    yield Harness(gw, sio, records, system, journal)
    for conn in gw.connections.values():
        if conn.expiry is not None:
            conn.expiry.cancel()


async def test_a_socket_is_recorded_before_its_actor_hears_of_it(h: Harness) -> None:
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    assert h.journal == [("add", "s1"), ("opened", "s1")]
    assert await h.records.of_user(ANN) == {"s1": NODE}
    await session.disconnect(h.gw, "s1")
    assert h.journal[2:] == [("remove", "s1"), ("closed", "s1")]
    assert await h.records.of_user(ANN) == {}
    assert h.gw.connections == {}


async def test_a_socket_that_cannot_be_recorded_is_refused_as_unavailable(
        h: Harness) -> None:
    h.records.failing = True
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s1", {"token": "t"})
    assert refused.value.error_args == {"message": "unavailable",
                                        "data": {"code": "unavailable"}}
    assert h.gw.connections == {}
    assert h.journal == []  # the actor never heard of it


async def test_a_stopping_actor_system_refuses_and_unrecords_the_socket(h: Harness) -> None:
    h.system.stopped = True
    with pytest.raises(socketio.exceptions.ConnectionRefusedError):
        await session.connect(h.gw, "s1", {"token": "t"})
    assert h.gw.connections == {}
    assert await h.records.of_user(ANN) == {}


async def test_a_failed_remove_still_tells_the_actor(h: Harness) -> None:
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    h.records.failing = True
    await session.disconnect(h.gw, "s1")
    assert h.journal[-1] == ("closed", "s1")
    # The lingering record is dropped by the next directory read on this node.
    h.records.failing = False
    assert await RecordedSessions(h.gw, h.records).sessions(ANN) == {}
    assert await h.records.of_user(ANN) == {}


async def test_auth_refresh_records_the_socket_again(h: Harness) -> None:
    # Records expire some days after their last add: a socket kept open by refreshes is
    # added again each time.
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    conn = h.gw.connections["s1"]
    ack = await session.refresh(h.gw, conn, AuthRefresh(token="t"))
    assert ack["ok"] is True
    assert h.journal[-1] == ("add", "s1")
    await session.disconnect(h.gw, "s1")


async def test_a_refresh_racing_the_close_does_not_leave_a_record(h: Harness) -> None:
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    conn = h.gw.connections["s1"]

    class ClosingWhileAdding(RecordingRecords):
        async def add(self, user_id: str, session_id: str, node_id: str) -> None:
            await session.disconnect(h.gw, session_id)  # the close runs first...
            await super().add(user_id, session_id, node_id)  # ...then our add lands

    h.gw.sessions_store = racing = ClosingWhileAdding(h.journal)
    await session.refresh(h.gw, conn, AuthRefresh(token="t"))
    assert await racing.of_user(ANN) == {}


async def test_single_node_trusts_only_its_own_sockets(h: Harness) -> None:
    h.held("s1")
    await h.records.add(ANN, "s1", NODE)
    await h.records.add(ANN, "old", "node-of-a-previous-process")
    directory = RecordedSessions(h.gw, h.records)
    assert await directory.sessions(ANN) == {"s1": NODE}
    assert await h.records.of_user(ANN) == {"s1": NODE}  # the stale record is forgotten


async def test_records_of_nodes_outside_the_live_view_are_left_out(h: Harness) -> None:
    h.held("s1")
    await h.records.add(ANN, "s1", NODE)
    await h.records.add(ANN, "s2", "node-b")
    await h.records.add(ANN, "s3", "node-c")
    view = [NODE, "node-b"]
    h.gw.live_nodes = lambda: view
    directory = RecordedSessions(h.gw, h.records)
    assert await directory.sessions(ANN) == {"s1": NODE, "s2": "node-b"}
    # Kept in the records: node-c may have just joined, ahead of this node's view (a dead
    # node's records go with forget_node).
    view.append("node-c")
    assert await directory.sessions(ANN) == {"s1": NODE, "s2": "node-b", "s3": "node-c"}


async def test_own_sockets_not_held_or_without_transport_are_left_out(h: Harness) -> None:
    zombie = h.held("zombie")
    expiry = asyncio.get_running_loop().call_later(60, lambda: None)
    zombie.expiry = expiry
    h.sio.transport("zombie").closed = True  # Engine.IO lost it, Socket.IO never said
    h.held("theirs", "user-bob")  # a socket of someone else under that id: not ann's
    for sid in ("zombie", "gone", "theirs"):
        await h.records.add(ANN, sid, NODE)
    directory = RecordedSessions(h.gw, h.records)
    assert await directory.sessions(ANN) == {}
    assert await h.records.of_user(ANN) == {}
    assert "zombie" not in h.gw.connections and "theirs" in h.gw.connections
    assert expiry.cancelled()
    await h.settled()  # the zombie is closed as a reported close would be
    assert h.journal[-2:] == [("remove", "zombie"), ("closed", "zombie")]


async def test_a_failing_store_raises_from_the_directory(h: Harness) -> None:
    class Broken(MemorySessionRecords):
        async def of_user(self, user_id: str) -> dict[str, str]:
            raise StorageError("redis is down")

    with pytest.raises(StorageError):
        await RecordedSessions(h.gw, Broken()).sessions(ANN)


async def test_the_sweep_closes_zombies_and_retries_failed_removes(h: Harness) -> None:
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    h.sio.transport("s2")
    await session.connect(h.gw, "s2", {"token": "t"})
    h.records.failing = True
    await session.disconnect(h.gw, "s1")
    assert h.gw.unremoved == {(ANN, "s1")}
    await session.sweep(h.gw)  # still failing: kept for the next pass
    assert h.gw.unremoved == {(ANN, "s1")}
    h.records.failing = False
    h.sio.transport("s2").closed = True  # a zombie
    await session.sweep(h.gw)
    assert h.gw.unremoved == set() and h.gw.connections == {}
    assert await h.records.of_user(ANN) == {}
    assert h.journal[-3:] == [("remove", "s2"), ("closed", "s2"), ("remove", "s1")]


async def test_a_socket_whose_token_expired_is_closed(h: Harness) -> None:
    closing = asyncio.Event()

    async def disconnect(sid: str) -> None:
        h.journal.append(("disconnect", sid))
        closing.set()
        await session.disconnect(h.gw, sid)

    h.sio.disconnect = disconnect  # type: ignore[attr-defined]
    for sid in ("s1", "s2"):
        h.sio.transport(sid)
        await session.connect(h.gw, sid, {"token": "t"})
    assert h.gw.expiries is not None and len(h.gw.expiries) == 2  # one timer for both
    conn = h.gw.connections["s1"]
    conn.expires_at = int(time.time()) - 1  # its token ran out
    await session.refresh(h.gw, h.gw.connections["s2"], AuthRefresh(token="t"))
    session._arm_expiry(h.gw, conn)
    assert len(h.gw.expiries) == 2  # a refresh or a re-arm replaces the entry
    await asyncio.wait_for(closing.wait(), 5)
    await h.settled()
    assert ("disconnect", "s1") in h.journal and list(h.gw.connections) == ["s2"]
    assert len(h.gw.expiries) == 1
    await session.disconnect(h.gw, "s2")
    assert len(h.gw.expiries) == 0


async def test_a_connection_makes_its_sets_on_first_use(h: Harness) -> None:
    h.sio.transport("s1")
    await session.connect(h.gw, "s1", {"token": "t"})
    conn = h.gw.connections["s1"]
    assert (conn._rooms, conn._watching, conn._calls) == (None, None, None)
    conn.rooms.add("r1")
    assert conn.rooms == {"r1"} and conn._watching is None and conn._calls is None
