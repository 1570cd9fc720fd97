"""A Socket.IO connect as the gateway runs it with Redis behind the session records, the
watermark cache and presence (server/gateway/session.py), against a real Redis and a real
UserActor: one Redis round trip records the socket and reads the cached watermark and the
presence snapshot, and the actor's activation costs one more (a conditional save) where it
used to read twice and save. A revoked token is still refused, whether its watermark is
cached or read from Postgres, and an unreachable Redis or Postgres refuses with
`unavailable`. Fakes: Socket.IO and the watermark table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import pytest_asyncio
import redis.asyncio as redis
import socketio

from actors.system import ActorSystem
from actors.user import UserActor
from protocols.user_messages import GetPresence, SessionOpened
from server.auth.authenticator import Authenticator
from server.auth.revocation import TokenWatermarks, issued_at
from server.auth.tokens import TokenCodec
from server.gateway import session
from server.gateway.connections import Gateway
from server.gateway.session import RecordedSessions
from storage.redis.presence import RedisPresenceStore
from storage.redis.sessions import RedisSessionRecords
from storage.redis.token_watermarks import RedisWatermarkCache
from tests.unit.fakes_auth import FakeTokenWatermarks
from tests.unit.user_actor.rig import FakeBroadcaster

pytestmark = pytest.mark.integration
NODE = "node-a"
ANN = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e0f"
BOB = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e10"


class CountingRedis(redis.Redis):
    """A client noting the name of every command it sends: one per round trip here (no
    pipelines on these paths)."""

    sent: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return await super().execute_command(*args, **options)


@dataclass
class FakeEngineSocket:
    closed: bool = False


@dataclass
class FakeSio:
    """python-socketio as the session module uses it: every socket has a live transport,
    and a disconnect of a socket runs the gateway's handler."""

    gw: Gateway | None = None
    manager: Any = None
    eio: Any = None

    def __post_init__(self) -> None:
        self.manager = self
        self.eio = self
        self.sockets: dict[str, FakeEngineSocket] = {}

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str:
        self.sockets.setdefault(sid, FakeEngineSocket())
        return sid

    async def enter_room(self, sid: str, room: str) -> None:
        pass

    async def disconnect(self, sid: str) -> None:
        assert self.gw is not None
        await session.disconnect(self.gw, sid)


@dataclass
class SpyRef:
    ref: Any
    told: list[Any]

    async def tell(self, message: Any) -> None:
        self.told.append(message)
        await self.ref.tell(message)


@dataclass
class SpySystem:
    """The actor system, noting what the gateway tells."""

    system: ActorSystem
    told: list[Any] = field(default_factory=list)

    def ref(self, actor_class: type, key: str) -> SpyRef:
        return SpyRef(self.system.ref(UserActor, key), self.told)


@dataclass
class Harness:
    gw: Gateway
    client: CountingRedis
    system: ActorSystem
    spy: SpySystem
    records: RedisSessionRecords
    presence: RedisPresenceStore
    cache: RedisWatermarkCache
    store: FakeTokenWatermarks
    watermarks: TokenWatermarks
    codec: TokenCodec

    async def token(self, user_id: str = ANN) -> str:
        valid_after, _ = await self.watermarks.state(user_id)
        return self.codec.issue(user_id, "user",
                                issued_at=issued_at(datetime.now(UTC), valid_after))

    async def sign_out(self, user_id: str) -> None:
        valid_after = self.store.raise_to(user_id, self.watermarks.next_watermark(),
                                          datetime.now(UTC))
        await self.watermarks.raised(user_id, valid_after)

    async def status(self, user_id: str = ANN) -> str:
        event = await self.system.ref(UserActor, user_id).ask(GetPresence(), timeout=5)
        return str(event.status)

    def fresh(self) -> None:
        """Forget what was sent and read so far."""
        self.client.sent.clear()
        self.store.reads = 0
        self.spy.told.clear()


def build(client: CountingRedis, prefix: str) -> Harness:
    client.sent = []
    records = RedisSessionRecords(client, prefix)
    presence = RedisPresenceStore(client, prefix)
    cache = RedisWatermarkCache(client, prefix, access_token_ttl=900)
    store = FakeTokenWatermarks()
    watermarks = TokenWatermarks(store, cache)
    codec = TokenCodec("k" * 32, issuer="hubbub", audience="hubbub-api", ttl=900)
    system = ActorSystem(idle_timeout=300.0)
    spy = SpySystem(system)
    sio = FakeSio()
    gw = Gateway(sio=cast(socketio.AsyncServer, sio), system=cast(ActorSystem, spy),
                 node_id=NODE, events_per_second=10, event_burst=10)
    sio.gw = gw
    gw.authenticate = Authenticator(codec, watermarks)
    gw.sessions_store, gw.presence = records, presence
    system.register(UserActor, lambda key, ctx: UserActor(
        key, ctx, presence=presence, broadcaster=FakeBroadcaster(),
        directory=RecordedSessions(gw, records)))
    return Harness(gw, client, system, spy, records, presence, cache, store, watermarks, codec)


@pytest_asyncio.fixture
async def h(redis_url: str, clean_redis_prefix: str) -> AsyncIterator[Harness]:
    client = CountingRedis.from_url(redis_url)
    harness = build(client, clean_redis_prefix)
    # Warm up: Redis loads each script on its first use (NOSCRIPT, then SCRIPT LOAD).
    await session.connect(harness.gw, "warm-up", {"token": await harness.token(BOB)})
    await session.disconnect(harness.gw, "warm-up")
    await harness.system.settled()
    harness.fresh()
    yield harness
    for sid in list(harness.gw.connections):
        await session.disconnect(harness.gw, sid)
    await harness.system.stop()
    await client.aclose()


def _refusal(info: pytest.ExceptionInfo[socketio.exceptions.ConnectionRefusedError]) -> Any:
    return info.value.error_args["data"]


async def test_a_connect_is_one_round_trip_and_its_activation_one_more(h: Harness) -> None:
    await h.cache.offer(ANN, 0)  # the watermark is cached (a REST request filled it)
    token = await h.token()
    h.fresh()
    await session.connect(h.gw, "s1", {"token": token})
    # Recorded, and the watermark and presence read, by one script: were an add and a GET.
    assert h.client.sent == ["EVALSHA"]
    await h.system.settled()
    # The activation adopted the snapshot: one conditional save, where it read the presence
    # record and the session records (HMGET, HGETALL) before it saved.
    assert h.client.sent == ["EVALSHA", "EVALSHA"]
    assert h.store.reads == 0
    assert await h.status() == "online"
    assert await h.records.of_user(ANN) == {"s1": NODE}


async def test_a_watermark_not_cached_is_read_from_postgres_and_cached(h: Harness) -> None:
    token = await h.token()
    h.fresh()
    await session.connect(h.gw, "s1", {"token": token})
    assert h.client.sent == ["EVALSHA", "SET"] and h.store.reads == 1
    assert await h.cache.get(ANN) == 0


async def test_with_the_cache_complete_a_miss_is_a_known_0(h: Harness) -> None:
    # What the watermark refresher leaves (server/auth/watermark_refresher.py): every
    # watermark that matters cached, and the marker. ANN has none.
    await h.cache.mark_complete(0.0)
    token = await h.token()
    h.fresh()
    await session.connect(h.gw, "s1", {"token": token})
    assert h.client.sent == ["EVALSHA"] and h.store.reads == 0
    assert await h.client.get(h.cache.key(ANN)) is None  # nothing to fill
    assert list(h.gw.connections) == ["s1"]
    # A sign-out raises the cache: its tokens stay refused, marker or not.
    await h.sign_out(ANN)
    await session.disconnect_user(h.gw, ANN)
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s2", {"token": token})
    assert _refusal(refused) == {"code": "unauthorized"} and h.store.reads == 0


@pytest.mark.parametrize("cached", [True, False])
async def test_a_revoked_token_is_refused_unrecorded_and_untold(h: Harness,
                                                                cached: bool) -> None:
    token = await h.token()
    await h.sign_out(ANN)  # raises the cached watermark too
    if not cached:
        await h.client.delete(h.cache.key(ANN))
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s1", {"token": token})
    assert _refusal(refused) == {"code": "unauthorized"}
    assert h.gw.connections == {} and await h.records.of_user(ANN) == {}
    assert h.spy.told == []
    await session.connect(h.gw, "s2", {"token": await h.token()})  # a fresh login's token
    assert list(h.gw.connections) == ["s2"]


async def test_a_sign_out_right_after_the_connect_closes_the_socket(h: Harness) -> None:
    # The script read the watermark before the raise: the sign-out lists the recorded
    # socket and closes it.
    await session.connect(h.gw, "s1", {"token": await h.token()})
    await h.sign_out(ANN)
    await session.disconnect_user(h.gw, ANN)
    assert h.gw.connections == {} and await h.records.of_user(ANN) == {}


async def test_an_unreachable_redis_refuses_as_unavailable(h: Harness) -> None:
    dead = CountingRedis.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=0.2")
    broken = build(dead, "hubbub-test:dead:")
    try:
        with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
            await session.connect(broken.gw, "s1", {"token": await h.token()})
        assert _refusal(refused) == {"code": "unavailable"}
        assert broken.gw.connections == {} and broken.spy.told == []
    finally:
        await broken.system.stop()
        await dead.aclose()


async def test_an_unreachable_postgres_on_a_miss_refuses_as_unavailable(h: Harness) -> None:
    token = await h.token()
    h.store.failing = True
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        await session.connect(h.gw, "s1", {"token": token})
    assert _refusal(refused) == {"code": "unavailable"}
    assert h.gw.connections == {} and await h.records.of_user(ANN) == {}
    assert h.spy.told == []


async def test_only_the_users_only_socket_carries_the_snapshot(h: Harness) -> None:
    await session.connect(h.gw, "s1", {"token": await h.token()})
    await h.system.settled()
    await session.connect(h.gw, "s2", {"token": await h.token()})
    await h.system.settled()
    opened = [m for m in h.spy.told if isinstance(m, SessionOpened)]
    assert [m.presence is not None for m in opened] == [True, False]
    # The actor knows both: closing the first keeps the user online past the grace period.
    await session.disconnect(h.gw, "s1")
    await h.system.settled()
    assert await h.status() == "online"
    assert await h.records.of_user(ANN) == {"s2": NODE}
