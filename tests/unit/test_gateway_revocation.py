"""Signing out everywhere, as the gateway sees it (server/gateway/session.py): a revoked token
cannot connect or auth:refresh, a connect racing the sign-out is refused, and
`disconnect_user` closes the user's sockets here and, through the Socket.IO manager, on the
other nodes. A real Authenticator over fake watermark storage; fakes for Socket.IO and the
actor system."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import socketio

from actors.system import ActorSystem
from protocols.socket import AuthRefresh
from protocols.user_messages import SessionClosed, SessionOpened
from server.auth.authenticator import Authenticator
from server.auth.revocation import MemoryWatermarkCache, TokenWatermarks, issued_at
from server.auth.tokens import TokenCodec
from server.gateway import session
from server.gateway.connections import Gateway
from storage.errors import StorageError
from storage.memory.sessions import MemorySessionRecords
from tests.unit.fakes_auth import FakeTokenWatermarks

NODE, OTHER_NODE = "node-a", "node-b"
ANN = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e0f"
BOB = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e10"


@dataclass
class FakeSio:
    """python-socketio as the session module uses it. `disconnect` of a socket of this node
    runs the gateway's disconnect handler, as python-socketio does; of any other socket it is
    only noted (the Redis manager would forward it to the node holding it)."""

    gw: Gateway | None = None
    disconnected: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)

    async def enter_room(self, sid: str, room: str) -> None:
        pass

    async def disconnect(self, sid: str) -> None:
        assert self.gw is not None
        if sid in self.gw.connections:
            self.disconnected.append(sid)
            await session.disconnect(self.gw, sid)
        else:
            self.forwarded.append(sid)


@dataclass
class FakeRef:
    journal: list[tuple[str, str]]

    async def tell(self, message: Any) -> None:
        match message:
            case SessionOpened(session_id=sid):
                self.journal.append(("opened", sid))
            case SessionClosed(session_id=sid):
                self.journal.append(("closed", sid))


@dataclass
class FakeSystem:
    journal: list[tuple[str, str]] = field(default_factory=list)

    def ref(self, actor_class: type, key: str) -> FakeRef:
        return FakeRef(self.journal)


class HookedRecords(MemorySessionRecords):
    """Memory records; `on_add` runs inside each add (a sign-out racing the connect), and
    `failing` makes reads fail like an unreachable Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.on_add: Callable[[], Awaitable[None]] | None = None
        self.failing = False

    async def add(self, user_id: str, session_id: str, node_id: str) -> None:
        await super().add(user_id, session_id, node_id)
        if self.on_add is not None:
            await self.on_add()

    async def of_user(self, user_id: str) -> dict[str, str]:
        if self.failing:
            raise StorageError("redis is down")
        return await super().of_user(user_id)


@dataclass
class Harness:
    gw: Gateway
    sio: FakeSio
    system: FakeSystem
    records: HookedRecords
    watermarks: TokenWatermarks
    codec: TokenCodec
    store: FakeTokenWatermarks

    async def token(self, user_id: str = ANN) -> str:
        """What a login now hands out (AuthService: `iat` lifted to the watermark)."""
        valid_after, _ = await self.watermarks.state(user_id)
        return self.codec.issue(user_id, "user",
                                issued_at=issued_at(datetime.now(UTC), valid_after))

    async def sign_out(self, user_id: str) -> None:
        """What AuthService does to sign a user out everywhere (the refresh tokens aside)."""
        valid_after = self.store.raise_to(user_id, self.watermarks.next_watermark(),
                                     datetime.now(UTC))
        await self.watermarks.raised(user_id, valid_after)


@pytest.fixture
async def h() -> Any:
    sio, system, records = FakeSio(), FakeSystem(), HookedRecords()
    gw = Gateway(sio=cast(socketio.AsyncServer, sio), system=cast(ActorSystem, system),
                 node_id=NODE, events_per_second=10, event_burst=10)
    sio.gw = gw
    store = FakeTokenWatermarks()
    watermarks = TokenWatermarks(store, MemoryWatermarkCache())
    codec = TokenCodec("k" * 32, issuer="hubbub", audience="hubbub-api", ttl=900)
    gw.authenticate = Authenticator(codec, watermarks)
    gw.sessions_store = records
    yield Harness(gw, sio, system, records, watermarks, codec, store)
    for conn in gw.connections.values():
        if conn.expiry is not None:
            conn.expiry.cancel()


def _refusal(info: pytest.ExceptionInfo[socketio.exceptions.ConnectionRefusedError]) -> Any:
    return info.value.error_args["data"]


async def test_a_revoked_token_cannot_connect(h: Harness) -> None:
    token = await h.token()
    await h.sign_out(ANN)
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s1", {"token": token})
    assert _refusal(refused) == {"code": "unauthorized"}
    assert h.gw.connections == {} and await h.records.of_user(ANN) == {}
    await session.connect(h.gw, "s2", {"token": await h.token()})  # a fresh login's token
    assert list(h.gw.connections) == ["s2"]


async def test_a_connect_racing_a_sign_out_is_refused_and_unrecorded(h: Harness) -> None:
    token = await h.token()

    async def sign_out() -> None:  # lands after the token check, before the re-check
        h.records.on_add = None
        await h.sign_out(ANN)

    h.records.on_add = sign_out
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s1", {"token": token})
    assert _refusal(refused) == {"code": "unauthorized"}
    assert h.gw.connections == {} and await h.records.of_user(ANN) == {}
    assert h.system.journal == []  # the UserActor never heard of it


async def test_disconnect_user_closes_every_socket_of_the_user_on_every_node(
        h: Harness) -> None:
    for sid in ("s1", "s2"):
        await session.connect(h.gw, sid, {"token": await h.token(ANN)})
    await session.connect(h.gw, "b1", {"token": await h.token(BOB)})
    await h.records.add(ANN, "elsewhere", OTHER_NODE)  # a socket of ann on another node

    await session.disconnect_user(h.gw, ANN)
    assert sorted(h.sio.disconnected) == ["s1", "s2"]
    assert h.sio.forwarded == ["elsewhere"]
    assert list(h.gw.connections) == ["b1"]
    assert ("closed", "s1") in h.system.journal and ("closed", "s2") in h.system.journal
    assert await h.records.of_user(ANN) == {"elsewhere": OTHER_NODE}  # its node removes it


async def test_disconnect_user_without_records_still_closes_this_nodes_sockets(
        h: Harness) -> None:
    await session.connect(h.gw, "s1", {"token": await h.token()})
    h.records.failing = True
    await session.disconnect_user(h.gw, ANN)
    assert h.sio.disconnected == ["s1"] and h.gw.connections == {}


async def test_auth_refresh_refuses_a_revoked_token(h: Harness) -> None:
    await session.connect(h.gw, "s1", {"token": await h.token()})
    conn = h.gw.connections["s1"]
    stale = await h.token()
    await h.sign_out(ANN)
    ack = await session.refresh(h.gw, conn, AuthRefresh(token=stale))
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
    fresh = await session.refresh(h.gw, conn, AuthRefresh(token=await h.token()))
    assert fresh["ok"] is True
