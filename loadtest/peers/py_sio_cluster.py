"""The peer of `make bench-cluster-peer`: what a python-socketio chat server written by hand
looks like once it must run on several nodes. It is the shared benchmark's `py-sio-pg` peer
(../shared/bench/peers/py-sio) made cluster-safe, and nothing more:

- Socket.IO: python-socketio's `AsyncRedisManager`, the library's own way to run several
  nodes: every emit is delivered to this node's sockets, pickled and published on one channel
  that every node reads.
- Rooms live in Postgres (`peer_rooms`), since any node may be asked about any room. A node
  keeps a room's members once read (the bench never changes them).
- Seq: a room's counter is a column of its row. One statement takes the next number and
  inserts the message (`UPDATE ... RETURNING` in a CTE): the row lock orders concurrent
  senders on every node, and a failed insert rolls the number back, so seqs stay 1, 2, 3...
  Within a node, a per-room asyncio.Lock keeps the broadcasts in seq order, as in py-sio-pg.
- Idempotent per (room, sender, client_id): a resend is answered from the node's recent
  window, or, when it first went through another node, found by the unique constraint.

Same contract as Hubbub and the shared peers for what the bench uses (shared/API.md):
connect with auth {token} (HS256 JWT, iss/aud/exp checked; else connect_error
{code: "unauthorized"}), `room:join {room_id}` -> {ok, last_seq, missed: []} for members,
`message:send {room_id, client_id, text}` -> `message:new {message}` to the room then the ack
{ok, message}; POST /v1/rooms {kind, member_ids, name} with a Bearer token -> 201; GET /ready.

Environment, named as Hubbub's so that loadtest/harness.py starts either: HOST, PORT,
JWT_SECRET, DATABASE_URL, REDIS_URL, REDIS_KEY_PREFIX (the Socket.IO channel's prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import socketio
import uvloop
from aiohttp import web

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "18480"))
SECRET = os.environ.get("JWT_SECRET", "")
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
CHANNEL = os.environ.get("REDIS_KEY_PREFIX", "") + "socketio"
RECENT = 1000  # per room: the resend window answered without Postgres
MAX_TEXT = 4000

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_rooms (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    name        text,
    member_ids  text[] NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS messages (
    id          uuid PRIMARY KEY,
    room_id     uuid NOT NULL REFERENCES peer_rooms (id),
    seq         bigint NOT NULL CHECK (seq >= 1),
    sender_id   text NOT NULL,
    client_id   text NOT NULL,
    text        text NOT NULL,
    kind        text NOT NULL DEFAULT 'text',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq),
    CONSTRAINT messages_client_key UNIQUE (room_id, sender_id, client_id)
);
"""
APPEND = """
WITH next AS (
    UPDATE peer_rooms SET last_seq = last_seq + 1 WHERE id = $2 RETURNING last_seq
)
INSERT INTO messages (id, room_id, seq, sender_id, client_id, text, created_at)
SELECT $1, $2, next.last_seq, $3, $4, $5, $6 FROM next
RETURNING seq
"""
EARLIER = ("SELECT id, seq, text, created_at FROM messages "
           "WHERE room_id = $1 AND sender_id = $2 AND client_id = $3")


class Room:
    __slots__ = ("id", "lock", "members", "recent")

    def __init__(self, room_id: str, members: set[str]) -> None:
        self.id = room_id
        self.members = members
        self.lock = asyncio.Lock()
        self.recent: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def remember(self, key: tuple[str, str], message: dict[str, Any]) -> None:
        self.recent[key] = message
        if len(self.recent) > RECENT:
            self.recent.popitem(last=False)


class Peer:
    def __init__(self, pool: asyncpg.Pool, sio: socketio.AsyncServer) -> None:
        self.pool = pool
        self.sio = sio
        self.rooms: dict[str, Room] = {}
        self.users: dict[str, str] = {}  # sid -> user id

    async def room(self, room_id: object) -> tuple[Room | None, int]:
        """The room and its last seq; (None, 0) when it does not exist."""
        if not isinstance(room_id, str):
            return None, 0
        try:
            key = uuid.UUID(room_id)
        except ValueError:
            return None, 0
        row = await self.pool.fetchrow(
            "SELECT member_ids, last_seq FROM peer_rooms WHERE id = $1", key)
        if row is None:
            return None, 0
        room = self.rooms.get(str(key))
        if room is None:
            room = self.rooms[str(key)] = Room(str(key), set(row["member_ids"]))
        return room, row["last_seq"]

    async def append(self, room: Room, user_id: str, client_id: str,
                     text: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        message_id = uuid.uuid4()
        try:
            seq = await self.pool.fetchval(APPEND, message_id, uuid.UUID(room.id), user_id,
                                           client_id, text, now)
        except asyncpg.UniqueViolationError:
            # Sent before through another node: that first message is the answer.
            row = await self.pool.fetchrow(EARLIER, uuid.UUID(room.id), user_id, client_id)
            if row is None:
                raise
            message_id, seq, text, now = row["id"], row["seq"], row["text"], row["created_at"]
        return {"id": str(message_id), "room_id": room.id, "seq": seq, "sender_id": user_id,
                "text": text, "client_id": client_id, "created_at": now.isoformat(),
                "kind": "text"}


def authenticate(token: object) -> str | None:
    if not isinstance(token, str) or not token:
        return None
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="hubbub",
                            audience="hubbub-api")
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def fail(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def add_events(sio: socketio.AsyncServer, peer: Peer) -> None:
    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: object = None) -> None:
        user_id = authenticate(auth.get("token") if isinstance(auth, dict) else None)
        if user_id is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized",
                                                             {"code": "unauthorized"})
        peer.users[sid] = user_id
        await sio.enter_room(sid, f"user:{user_id}")

    @sio.event
    async def disconnect(sid: str, *args: object) -> None:
        peer.users.pop(sid, None)

    @sio.on("room:join")
    async def room_join(sid: str, data: object = None) -> dict[str, Any]:
        user_id = peer.users.get(sid)
        if user_id is None:
            return fail("unavailable", "this connection is closing")
        room, last_seq = await peer.room(data.get("room_id") if isinstance(data, dict)
                                         else None)
        if room is None or user_id not in room.members:
            return fail("not_member", "You are not a member of this room")
        await sio.enter_room(sid, f"room:{room.id}")
        return {"ok": True, "last_seq": last_seq, "missed": []}

    @sio.on("message:send")
    async def message_send(sid: str, data: object = None) -> dict[str, Any]:
        user_id = peer.users.get(sid)
        if user_id is None:
            return fail("unavailable", "this connection is closing")
        if not isinstance(data, dict):
            return fail("invalid", "room_id, client_id and text are required")
        text, client_id = data.get("text"), data.get("client_id")
        if (not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT
                or not isinstance(client_id, str) or not 1 <= len(client_id) <= 64):
            return fail("invalid", f"text must be 1..{MAX_TEXT} characters and client_id 1..64")
        room = peer.rooms.get(str(data.get("room_id", "")).lower())
        if room is None:
            room, _ = await peer.room(data.get("room_id"))
        if room is None or user_id not in room.members:
            return fail("not_member", "You are not a member of this room")
        key = (user_id, client_id)
        async with room.lock:
            message = room.recent.get(key)
            if message is not None:
                return {"ok": True, "message": message}
            try:
                message = await peer.append(room, user_id, client_id, text)
            except (asyncpg.PostgresError, OSError) as exc:
                return fail("unavailable", type(exc).__name__)
            room.remember(key, message)
            await sio.emit("message:new", {"message": message}, room=f"room:{room.id}")
        return {"ok": True, "message": message}


async def create_room(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    owner = authenticate(header[7:]) if header.startswith("Bearer ") else None
    if owner is None:
        return _problem(401, "unauthorized", "missing or bad token")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "malformed", "the body is not JSON")
    members = body.get("member_ids") if isinstance(body, dict) else None
    if (not isinstance(body, dict) or body.get("kind") not in ("group", "direct")
            or not isinstance(members, list) or not 1 <= len(members) <= 256
            or not all(isinstance(m, str) and m for m in members)):
        return _problem(422, "invalid", "kind and member_ids are required")
    name = body.get("name") if isinstance(body.get("name"), str) else None
    member_ids = sorted({owner, *members})
    row = await request.app["peer"].pool.fetchrow(
        "INSERT INTO peer_rooms (id, kind, name, member_ids) VALUES ($1, $2, $3, $4) "
        "RETURNING id, created_at", uuid.uuid4(), body["kind"], name, member_ids)
    return web.json_response({"id": str(row["id"]), "kind": body["kind"], "name": name,
                              "member_ids": member_ids,
                              "created_at": row["created_at"].isoformat(), "last_seq": 0,
                              "last_message": None, "unread_count": 0}, status=201)


def _problem(status: int, code: str, detail: str) -> web.Response:
    return web.Response(status=status, content_type="application/problem+json",
                        text=json.dumps({"type": f"urn:peer:problem:{code}", "title": code,
                                         "status": status, "detail": detail, "code": code}))


async def ready(request: web.Request) -> web.Response:
    await request.app["peer"].pool.fetchval("SELECT 1")
    return web.json_response({"status": "ok"})


async def serve() -> None:
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=2, max_size=20)
    async with pool.acquire() as conn, conn.transaction():
        # Nodes may start together: one of them creates the tables.
        await conn.execute("SELECT pg_advisory_xact_lock(7242)")
        await conn.execute(SCHEMA)
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=socketio.AsyncRedisManager(REDIS_URL,
                                                                        channel=CHANNEL),
        cors_allowed_origins="*", logger=False, engineio_logger=False,
        max_http_buffer_size=256 * 1024)
    peer = Peer(pool, sio)
    add_events(sio, peer)
    app = web.Application()
    app["peer"] = peer
    sio.attach(app, socketio_path="socket.io")
    app.router.add_get("/ready", ready)
    app.router.add_get("/health", ready)
    app.router.add_post("/v1/rooms", create_room)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=3)
    await runner.setup()
    await web.TCPSite(runner, HOST, PORT, backlog=4096).start()
    print(json.dumps({"listening": f"http://{HOST}:{PORT}", "pid": os.getpid()}), flush=True)
    await _signalled()
    with contextlib.suppress(Exception):  # a socket whose client is gone never flushes
        await asyncio.wait_for(sio.eio.disconnect(), 3)
    await runner.cleanup()
    await pool.close()


async def _signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> int:
    if len(SECRET.encode()) < 32 or not DATABASE_URL or not REDIS_URL:
        print("JWT_SECRET (>= 32 bytes), DATABASE_URL and REDIS_URL are required",
              file=sys.stderr)
        return 2
    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
