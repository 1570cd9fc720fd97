"""A Socket.IO client small enough for hundreds of locust users per process: the Engine.IO v4
/ Socket.IO v5 framing written by hand (as loadtest/chat_client.py does) over one
`websocket-client` connection, which locust's gevent monkey-patching makes cooperative.

One greenlet per connection reads frames: it answers Engine.IO pings (`2` -> `3`), resolves
acks (`43<id>[...]`) and hands server events (`42[event, data]`) to a callback. `emit()` sends
`42<id>[event, data]` and reports the ack to locust as request type `sio`, name
`"<event> ack"`, with its round-trip time; an ack `{ok: false}` or a timeout is a failure.

Why not python-socketio's own client: its sync Client runs a reader thread, a ping thread and
a queue per connection plus python-engineio's packet machinery, several greenlets and a few
hundred KiB per simulated user, and its reconnection logic hides exactly what a reconnect
storm must control (when a socket drops, when it comes back, with which `since_seq`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from itertools import count
from typing import Any

import gevent
import websocket
from gevent.event import AsyncResult
from locust.env import Environment

log = logging.getLogger("hubbub.loadtest.sio")

EventHandler = Callable[[str, Any], None]


class SocketGone(ConnectionError):
    """The connection closed (dropped on purpose, or by the server) before an answer."""


class Refused(Exception):
    """An ack `{ok: false, error: {code, message}}`: `code` says why."""

    def __init__(self, event: str, error: dict[str, Any]) -> None:
        self.code = str(error.get("code", "unknown"))
        super().__init__(f"{event}: {self.code}: {error.get('message', '')}"[:300])


def report(environment: Environment, name: str, millis: float, length: int = 0,
           exception: BaseException | None = None) -> None:
    """One Socket.IO measurement in locust's statistics (request type `sio`)."""
    environment.events.request.fire(request_type="sio", name=name, response_time=millis,
                                    response_length=length, exception=exception, context={})


def socket_url(base_url: str) -> str:
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/socket.io/?EIO=4&transport=websocket"


class SioClient:
    """One Socket.IO connection (namespace `/`), connected with `auth: {token}`."""

    def __init__(self, environment: Environment, base_url: str, on_event: EventHandler,
                 on_close: Callable[[SioClient, bool], None]) -> None:
        self.environment = environment
        self.base_url = base_url
        self.on_event = on_event
        self.on_close = on_close  # (client, on_purpose): after the reader has stopped
        self.ws: websocket.WebSocket | None = None
        self.pending: dict[int, AsyncResult] = {}
        self.ids = count(1)
        self.reader: gevent.Greenlet | None = None
        self.closing = False  # we hung up (drop or close): no failure to report

    @property
    def alive(self) -> bool:
        return self.ws is not None and self.ws.connected and not self.closing

    def connect(self, token: str, name: str = "connect", timeout: float = 15.0) -> None:
        """Open the websocket and the Socket.IO session; reported as `name` (connect time).
        Raises SocketGone or Refused (both reported)."""
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(socket_url(self.base_url), timeout=timeout,
                                             enable_multithread=True)
            opening = ws.recv()
            if not isinstance(opening, str) or not opening.startswith("0{"):
                raise SocketGone(f"unexpected Engine.IO opening {str(opening)[:100]!r}")
            ws.send("40" + json.dumps({"token": token}))
            answer = ws.recv()
            while answer == "2":  # a ping may come first on a slow handshake
                ws.send("3")
                answer = ws.recv()
        except (OSError, websocket.WebSocketException) as exc:
            gone = exc if isinstance(exc, SocketGone) else SocketGone(
                f"{type(exc).__name__}: {exc}")
            report(self.environment, name, _since(started), exception=gone)
            raise gone from None
        if not isinstance(answer, str) or not answer.startswith("40"):
            ws.close()
            data = json.loads(answer[2:]) if isinstance(answer, str) and answer[2:] else {}
            refused = Refused("connect", (data.get("data") or {}) | {"message": data.get(
                "message", str(answer)[:100])})
            report(self.environment, name, _since(started), exception=refused)
            raise refused
        ws.settimeout(None)  # the reader blocks until a frame comes; pings keep it alive
        self.ws = ws
        report(self.environment, name, _since(started), len(answer))
        self.reader = gevent.spawn(self._read)

    def emit(self, event: str, data: Any, timeout: float = 15.0, name: str | None = None,
             ) -> dict[str, Any]:
        """Send `event` with an ack and return the ack; reported as `<name or event> ack`.
        Raises Refused (`ok: false`), SocketGone, or TimeoutError (all reported, except a
        SocketGone of a connection we hung up ourselves)."""
        label = f"{name or event} ack"
        if not self.alive:
            raise SocketGone("not connected")
        assert self.ws is not None
        ack_id = next(self.ids)
        waiter = AsyncResult()
        self.pending[ack_id] = waiter
        frame = f"42{ack_id}" + json.dumps([event, data], separators=(",", ":"))
        started = time.perf_counter()
        try:
            self.ws.send(frame)
            ack = waiter.get(timeout=timeout)
        except gevent.Timeout:
            error = TimeoutError(f"{event}: no ack within {timeout:g}s")
            report(self.environment, label, _since(started), exception=error)
            raise error from None
        except (OSError, websocket.WebSocketException, SocketGone) as exc:
            if not self.closing:
                report(self.environment, label, _since(started),
                       exception=SocketGone(f"{type(exc).__name__}: {exc}"))
            raise SocketGone(str(exc)) from None
        finally:
            self.pending.pop(ack_id, None)
        millis = _since(started)
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            refused = Refused(event, ack.get("error", {}) if isinstance(ack, dict) else {})
            report(self.environment, label, millis, len(frame), refused)
            raise refused
        report(self.environment, label, millis, len(frame))
        return ack

    def drop(self) -> None:
        """Hang up abruptly, as a phone losing its network or a proxy restarting does: no
        Socket.IO disconnect, no websocket close frame; the TCP connection just ends."""
        self.closing = True
        if self.ws is not None:
            self.ws.abort()  # shutdown(SHUT_RDWR): wakes the reader, which closes the socket
        self._stop_reader()

    def close(self) -> None:
        """Leave cleanly: a Socket.IO disconnect and a websocket close frame, then hang up."""
        self.closing = True
        ws = self.ws
        if ws is not None:
            try:
                if ws.connected:
                    ws.send("41")
                    ws.send_close()
            except (OSError, websocket.WebSocketException):
                pass
            ws.abort()
        self._stop_reader()

    def _stop_reader(self) -> None:
        if self.reader is not None and self.reader is not gevent.getcurrent():
            self.reader.join(timeout=2)
            if not self.reader.dead:
                self.reader.kill(block=False)

    def _read(self) -> None:
        assert self.ws is not None
        ws = self.ws
        try:
            while True:
                frame = ws.recv()
                if not isinstance(frame, str) or not frame:
                    break  # a close frame (or a binary one, which Hubbub never sends)
                if frame == "2":
                    ws.send("3")
                elif frame.startswith("42"):
                    event, *payload = json.loads(frame[2:])
                    self._dispatch(event, payload[0] if payload else None)
                elif frame.startswith("43"):
                    bracket = frame.index("[")
                    waiter = self.pending.get(int(frame[2:bracket]))
                    if waiter is not None and not waiter.ready():
                        answer = json.loads(frame[bracket:])
                        waiter.set(answer[0] if answer else None)
                elif frame.startswith(("1", "41")):
                    break  # Engine.IO close or Socket.IO disconnect from the server
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            if not self.closing:
                log.info("socket read ended: %s: %s", type(exc).__name__, exc)
        finally:
            for waiter in list(self.pending.values()):
                if not waiter.ready():
                    waiter.set_exception(SocketGone("connection closed"))
            ws.shutdown()
            self.on_close(self, self.closing)

    def _dispatch(self, event: str, data: Any) -> None:
        try:
            self.on_event(event, data)
        except Exception:  # a bug in a handler must not end the connection
            log.exception("handler of %s failed", event)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
