"""Socket users: one Socket.IO connection for the user's whole life (loadtest/locust_sio.py),
plus REST for what the app does over HTTP (sign-up, rooms, history, token refresh).

Every ack is reported as `sio` `"<event> ack"`; every `message:new` from someone else as
`message:new delivery`, its latency taken from the send time the sender wrote into the text
(`lt:<unix ns> ...`), and every `feed:new` as `feed:new delivery`, from the post's
created_at. Latencies between processes assume their clocks agree (one machine, or NTP).

A connection the server closes is a failure (`disconnect`) and comes back after a second; a
reconnect storm (locust_events.py) drops sockets on purpose. Either way the user reconnects
(`reconnect`) and joins each of its rooms again with `since_seq` (`room:join since_seq ack`);
the messages it missed must come back without a gap (otherwise `room:join since_seq gap`).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime
from typing import Any

import gevent
from gevent.event import Event
from locust import task
from locust.exception import StopUser
from locust_accounts import fresh, refresh
from locust_rest import tour
from locust_rooms import ROOMS
from locust_settings import SETTINGS
from locust_sio import Refused, SioClient, SocketGone, report
from locust_user import SignedUpUser
from locust_world import WORLD

STAMP = "lt:"  # message texts start with lt:<unix ns of the send>
RECONNECT_TRIES = 5


class SocketUser(SignedUpUser):
    """Signs up, follows the celebrity, connects, then keeps that socket: presence, token
    refresh over the socket, and whatever subclasses add."""

    abstract = True
    pauses: tuple[float, float] = (1.0, 4.0)
    prefix = "sock"

    def on_start(self) -> None:
        self.stopping = False
        self.sio: SioClient | None = None
        self.ready = Event()  # connected, and every room joined
        self.rooms: dict[str, int | None] = {}  # room id -> last seq seen (None: not joined)
        self.sign_up()
        WORLD.socket_users.append(self.me)
        if WORLD.celebrity is not None:  # so that its posts arrive as feed:new
            self.rest("POST", f"/v1/users/{WORLD.celebrity.user_id}/follow",
                      "/v1/users/{id}/follow")
        if not self.open_socket("connect"):
            raise StopUser()
        self.ready.set()
        WORLD.sockets.add(self)
        self.started()
        if SETTINGS.tour:
            tour(self)

    def started(self) -> None:
        """Subclasses: what to do once connected."""

    def on_stop(self) -> None:
        self.stopping = True
        WORLD.sockets.discard(self)
        if getattr(self, "sio", None) is not None:
            assert self.sio is not None
            self.sio.close()

    @property
    def auth(self) -> dict[str, str]:
        return fresh(self.client, self.account)

    def rest(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        """A REST call as this user: the JSON answer ({} when empty), or None on failure."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        with self.client.request(method, path, name=name, headers=headers,
                                 catch_response=True, **kwargs) as response:
            if response.status_code not in (200, 201, 204):
                response.failure(f"{response.status_code} {(response.text or '')[:200]}")
                return None
            return response.json() if response.text else {}

    # -- the connection -----------------------------------------------------------------

    def open_socket(self, name: str) -> bool:
        client = SioClient(self.environment, self.host or "", self.on_event, self.on_closed)
        try:
            client.connect(self.auth["Authorization"][len("Bearer "):], name=name,
                           timeout=SETTINGS.ack_timeout)
        except (SocketGone, Refused):
            return False  # reported by connect()
        self.sio = client
        return True

    def emit(self, event: str, data: dict[str, Any], name: str | None = None,
             ) -> dict[str, Any] | None:
        """An event with its ack: the ack, or None (a refusal or timeout is reported; a
        socket that is down skips the event, as the app would queue or drop it)."""
        sio = self.sio
        if sio is None or not sio.alive:
            return None
        try:
            return sio.emit(event, data, timeout=SETTINGS.ack_timeout, name=name)
        except (Refused, SocketGone, TimeoutError):
            return None

    def on_closed(self, client: SioClient, on_purpose: bool) -> None:
        if on_purpose or client is not self.sio or self.stopping:
            return
        self.ready.clear()
        report(self.environment, "disconnect", 0.0,
               exception=SocketGone("the server closed the connection"))
        gevent.spawn_later(1.0 + random.random(), self.come_back)

    def storm_drop(self, back_in: float) -> bool:
        """A reconnect storm: lose the connection now, reconnect after `back_in` seconds."""
        if not self.ready.is_set() or self.sio is None or self.stopping:
            return False
        self.ready.clear()
        self.sio.drop()
        gevent.spawn_later(back_in, self.come_back)
        return True

    def come_back(self) -> None:
        """Reconnect (a few tries, a second apart), then join every room with since_seq."""
        for _ in range(RECONNECT_TRIES):
            if self.stopping:
                return
            if self.open_socket("reconnect"):
                if self.stopping:
                    assert self.sio is not None
                    self.sio.close()
                    return
                for room_id in list(self.rooms):
                    self.join(room_id)
                self.ready.set()
                self.back()
                return
            gevent.sleep(1.0)

    def back(self) -> None:
        """Subclasses: the socket is connected again after a drop."""

    # -- rooms and pushes ---------------------------------------------------------------

    def join(self, room_id: str) -> None:
        """room:join, with since_seq when this socket saw the room before; checks that the
        replayed messages continue the seq without a gap."""
        since = self.rooms.get(room_id)
        data: dict[str, Any] = {"room_id": room_id}
        if since is not None:
            data["since_seq"] = since
        ack = self.emit("room:join", data,
                        name="room:join since_seq" if since is not None else None)
        if ack is None:
            self.rooms.setdefault(room_id, None)
            return
        last = int(ack["last_seq"])
        if since is not None:
            seqs = [m["seq"] for m in ack["missed"]]
            expected = list(range(since + 1, since + 1 + len(seqs)))
            if seqs != expected or (len(seqs) < 500 and since + len(seqs) < last):
                report(self.environment, "room:join since_seq gap", 0.0, exception=ValueError(
                    f"since {since}, last {last}, replayed {seqs[:5]}...{seqs[-5:]}"))
        self.rooms[room_id] = max(last, self.rooms.get(room_id) or 0)

    def adopt(self, room_id: str, *, now: bool = False) -> None:
        """We are in this room now: join it, `now` from the calling greenlet (our own),
        otherwise in a greenlet of its own (someone else made the room with us in it)."""
        self.rooms.setdefault(room_id, None)
        if now:
            self.join(room_id)
        elif self.ready.is_set():
            gevent.spawn(self.join, room_id)

    def on_event(self, event: str, data: Any) -> None:
        if event == "message:new":
            message = data["message"]
            room_id, seq = message["room_id"], int(message["seq"])
            if room_id in self.rooms and seq > (self.rooms[room_id] or 0):
                self.rooms[room_id] = seq
            text = message.get("text") or ""
            if message.get("sender_id") != self.me and text.startswith(STAMP):
                sent_ns = int(text[len(STAMP):].split(" ", 1)[0])
                report(self.environment, "message:new delivery",
                       max(0.0, (time.time_ns() - sent_ns) / 1e6), len(text))
        elif event == "feed:new":
            created = datetime.fromisoformat(data["post"]["created_at"]).timestamp()
            report(self.environment, "feed:new delivery",
                   max(0.0, (time.time() - created) * 1000.0))
        else:
            self.on_push(event, data)

    def on_push(self, event: str, data: Any) -> None:
        """Subclasses: other server events (typing, presence, calls ...)."""

    # -- every socket user --------------------------------------------------------------

    @task(1)
    def presence_set(self) -> None:
        if self.ready.is_set():
            self.emit("presence:set", {"status": random.choice(["online", "away", "dnd"])})

    @task(1)
    def presence_subscribe(self) -> None:
        if self.ready.is_set():
            others = [u for u in WORLD.socket_users[-200:] if u != self.me]
            self.emit("presence:subscribe",
                      {"user_ids": random.sample(others, min(20, len(others)))})

    @task(1)
    def refresh_token(self) -> None:
        """A fresh pair over REST, and the new access token to the socket (auth:refresh)."""
        if self.ready.is_set() and refresh(self.client, self.account):
            self.emit("auth:refresh", {"token": self.account.access_token})


class ChatUser(SocketUser):
    """Chats in a group room (locust_rooms.py seats chat users in rooms of
    LOADTEST_ROOM_SIZE): types, sends, sends read receipts, scrolls history, lists rooms,
    leaves and comes back to a room."""

    weight = 5
    pauses = (1.0, 4.0)
    prefix = "chat"

    def started(self) -> None:
        ROOMS.seat(self)

    def on_stop(self) -> None:
        ROOMS.leave(self)
        super().on_stop()

    def a_room(self) -> str | None:
        joined = [r for r, seq in self.rooms.items() if seq is not None]
        return random.choice(joined) if joined and self.ready.is_set() else None

    @task(6)
    def chat(self) -> None:
        room_id = self.a_room()
        if room_id is None:
            return
        if self.emit("typing", {"room_id": room_id, "active": True}) is None:
            return
        gevent.sleep(random.uniform(0.2, 1.0) * SETTINGS.pace)  # typing
        if random.random() < 0.15:  # thought better of it
            self.emit("typing", {"room_id": room_id, "active": False})
            return
        text = f"{STAMP}{time.time_ns()} {random.choice(['hi', 'on my way', 'lol', 'ok!'])}"
        self.emit("message:send", {"room_id": room_id, "client_id": uuid.uuid4().hex,
                                   "text": text})

    @task(3)
    def read_receipt(self) -> None:
        room_id = self.a_room()
        seq = self.rooms.get(room_id) if room_id else None
        if room_id and seq:
            self.emit("message:read", {"room_id": room_id, "seq": seq})

    @task(1)
    def history(self) -> None:
        room_id = self.a_room()
        if room_id:
            self.rest("GET", f"/v1/rooms/{room_id}/messages?limit=20",
                      "/v1/rooms/{id}/messages")

    @task(1)
    def room_list(self) -> None:
        self.rest("GET", "/v1/rooms?limit=20", "/v1/rooms")

    @task(1)
    def leave_and_return(self) -> None:
        """Away from the chat screen for a moment, then back: room:join with since_seq."""
        room_id = self.a_room()
        if room_id and self.emit("room:leave", {"room_id": room_id}) is not None:
            gevent.sleep(random.uniform(0.5, 2.0) * SETTINGS.pace)
            self.join(room_id)
