"""Frames that are not Socket.IO: counted, logged once in a while, and a socket that keeps
sending them is closed.

python-socketio decodes each Engine.IO message in `_handle_eio_message` and lets whatever a
malformed one raises (bad JSON, an unknown packet type, an event that is not a list, a stray
binary attachment) escape to python-engineio, which logs a full ERROR traceback per frame and
carries on: 1,000 garbage frames wrote 3.6 MB of tracebacks and cost the sender nothing.

`GatewayServer._handle_eio_message` is python-socketio 5.18's (pinned in pyproject.toml) with
every such case caught and handed to `FrameGuard`: each bad frame spends a token of the
connection's event bucket (the per-connection limit every event counts against) and one of a
small bucket of bad frames per socket (BAD_FRAME_BURST, refilled at BAD_FRAMES_PER_SECOND);
when that one is empty, the Engine.IO session is closed. Each bad frame is logged as one
warning without a traceback (server/logs.py rate-limits repeats).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet

from server.gateway.connections import Connection
from server.gateway.direct import DirectEngineIO
from server.gateway.engine_socket import adopt
from server.gateway.limits import TokenBucket

log = logging.getLogger("hubbub.gateway")
BAD_FRAME_BURST = 5  # bad frames a socket may send at once...
BAD_FRAMES_PER_SECOND = 0.1  # ...and one per ten seconds after that, before it is closed
_REASON_CHARS = 200


class FrameGuard:
    """What bad frames cost a socket (by Engine.IO sid)."""

    def __init__(self, connection_of: Callable[[str], Connection | None], *,
                 burst: int = BAD_FRAME_BURST, rate: float = BAD_FRAMES_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connection_of = connection_of
        self._burst = burst
        self._rate = rate
        self._clock = clock
        self._bad: dict[str, TokenBucket] = {}  # sockets that sent bad frames
        self._closing: set[str] = set()
        self.frames = 0  # bad frames seen (for /metrics)
        self.closed = 0  # sockets closed for them

    def bad_frame(self, eio_sid: str) -> bool:
        """Count one bad frame; True when the socket is to be closed (once)."""
        self.frames += 1
        conn = self._connection_of(eio_sid)
        if conn is not None:
            conn.bucket.take()  # the per-connection event limit: garbage spends it too
        bucket = self._bad.get(eio_sid)
        if bucket is None:
            bucket = self._bad[eio_sid] = TokenBucket(self._rate, self._burst, self._clock)
        if not bucket.take() or eio_sid in self._closing:
            return False
        self._closing.add(eio_sid)
        self.closed += 1
        return True

    def user_of(self, eio_sid: str) -> str | None:
        conn = self._connection_of(eio_sid)
        return conn.user_id if conn is not None else None

    def forget(self, eio_sid: str) -> None:
        """The socket is gone."""
        self._bad.pop(eio_sid, None)
        self._closing.discard(eio_sid)


class BadFrame(Exception):
    """A frame that is not a Socket.IO packet this server can handle."""


class GatewayServer(socketio.AsyncServer):
    """python-socketio's AsyncServer, with bad frames handled by a FrameGuard."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frame_guard = FrameGuard(lambda eio_sid: None)  # the gateway sets its own
        self._closing: set[asyncio.Task[Any]] = set()

    def _engineio_server_class(self) -> type[DirectEngineIO]:
        # Packets to websocket sockets are written to their transport directly.
        return DirectEngineIO

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        # The Engine.IO socket exists, its first ping is not scheduled yet: make it ours.
        adopt(self.eio.sockets.get(eio_sid))
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await self._dispatch_frame(eio_sid, data)
        except BadFrame as bad:
            await self._bad_frame(eio_sid, str(bad))

    async def _dispatch_frame(self, eio_sid: str, data: Any) -> None:
        """python-socketio's `_handle_eio_message`, raising BadFrame for what it would have
        let escape as an exception (and for events that are not a non-empty list, which
        would fail in `_handle_event`)."""
        pending = self._binary_packet.get(eio_sid)
        if pending is not None:
            try:
                complete = pending.add_attachment(data)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                del self._binary_packet[eio_sid]
                raise BadFrame(f"binary attachment: {exc}") from None
            if complete:
                del self._binary_packet[eio_sid]
                if pending.packet_type == packet.BINARY_EVENT:
                    _check_event(pending.data)
                    await self._handle_event(eio_sid, pending.namespace, pending.id,
                                             pending.data)
                else:
                    _check_ack(pending.data)
                    await self._handle_ack(eio_sid, pending.namespace, pending.id,
                                           pending.data)
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # whatever the decoder makes of garbage
            raise BadFrame(f"undecodable: {type(exc).__name__}: {exc}") from None
        kind = pkt.packet_type
        if kind == packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace,
                                          self.reason.CLIENT_DISCONNECT)
        elif kind == packet.EVENT:
            _check_event(pkt.data)
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.ACK:
            _check_ack(pkt.data)
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind in (packet.BINARY_EVENT, packet.BINARY_ACK):
            if not self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
                raise BadFrame("a binary packet before connecting")
            self._binary_packet[eio_sid] = pkt
        else:
            raise BadFrame(f"unexpected packet type {str(kind)[:20]!r}")

    async def _bad_frame(self, eio_sid: str, reason: str) -> None:
        guard = self.frame_guard
        user_id = guard.user_of(eio_sid)
        log.warning("unparseable Socket.IO frame", extra={
            "reason": reason[:_REASON_CHARS], "user_id": user_id})
        if guard.bad_frame(eio_sid):
            log.warning("closing a socket that keeps sending unparseable frames",
                        extra={"user_id": user_id})
            # In a task: this runs inside the socket's own receive loop.
            task = asyncio.get_running_loop().create_task(self.eio.disconnect(eio_sid))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.frame_guard.forget(eio_sid)


def _check_event(data: Any) -> None:
    if not isinstance(data, list) or not data:
        raise BadFrame("an event must be a non-empty list")


def _check_ack(data: Any) -> None:
    if not isinstance(data, list):
        raise BadFrame("an ack must be a list")
