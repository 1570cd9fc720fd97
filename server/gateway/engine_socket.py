"""python-engineio's socket, lighter for clients that connect straight over websocket.

For each socket python-engineio keeps, for the socket's whole life, a task sleeping until the
next ping, a writer task waiting on the socket's queue, and for every frame received a task
plus a wait_for around the read. Hubbub writes its packets straight to the transport
(server/gateway/direct.py), so here:

- the ping is a timer (`loop.call_later`), not a sleeping task; the PING frame is written
  direct like any packet;
- the queue gets a writer task only while something is queued (the handshake, a packet that
  met a transport paused by flow control), which ends once the queue is empty; while it runs,
  direct writes wait their turn (`writing`), so the order of packets never changes;
- frames are read with aiohttp's own receive timeout, in the handler's own task;
- a client event for "/" (`42[...]`, nearly all of the traffic) is parsed once and handled
  by server/gateway/inbound.py, skipping python-engineio's and python-socketio's layers.

The protocol is python-engineio's (4.x): the same packets, ping timeouts and close handling.
Sockets that start on long-polling and upgrade keep python-engineio's own code for the whole
upgrade and the websocket that follows. `adopt` turns a new socket into one of these, before
python-engineio schedules its first ping or serves its transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import WSMsgType
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

from server.gateway.direct import text_frame
from server.gateway.inbound import take_event

log = logging.getLogger("hubbub.gateway")
_PING_FRAME = text_frame(b"2")  # an Engine.IO PING, as a websocket text frame
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)


class GatewaySocket(AsyncSocket):
    # Class-level defaults: instances are python-engineio's, re-classed by `adopt`.
    _ping_timer: asyncio.TimerHandle | None = None
    _ws: Any = None  # the websocket driver while this socket is served over it directly
    _writer: asyncio.Task[None] | None = None
    _pinging: asyncio.Task[None] | None = None

    @property
    def writing(self) -> bool:
        """Queued packets are being written: a direct write now would overtake them."""
        return self._writer is not None

    # -- pings --------------------------------------------------------------------------------

    def schedule_ping(self) -> None:
        # As python-engineio: only once the previous ping was answered (last_ping cleared).
        if self.last_ping:
            self.last_ping = None
            self._ping_timer = asyncio.get_running_loop().call_later(
                self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        links = getattr(self.server, "links", None)
        if links is not None and links.write(self.sid, _PING_FRAME):
            return
        self._pinging = asyncio.get_running_loop().create_task(
            self.send(packet.Packet(packet.PING)))

    # -- the queue ----------------------------------------------------------------------------

    async def send(self, pkt: packet.Packet) -> None:
        await super().send(pkt)
        if self._ws is not None and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        ws = self._ws
        try:
            while ws is not None and not self.queue.empty():
                pkt = self.queue.get_nowait()
                self.queue.task_done()
                if pkt is None:
                    break
                await ws.send(pkt.encode())
                if pkt.packet_type == packet.CLOSE:
                    await ws.close()  # told the client to go: do not wait for it to hang up
                    break
        except Exception:  # the connection went away: the read loop ends and cleans up
            log.debug("engine.io queued write failed", exc_info=True)
        finally:
            self._writer = None

    # -- the websocket ------------------------------------------------------------------------

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:
            # An upgrade from long-polling: python-engineio's probe handshake and loop.
            await super()._websocket_handler(ws)
            return
        self.connected = True
        self.upgraded = True
        self._ws = ws
        if not self.queue.empty():  # the handshake, queued before the websocket was ready
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())
        try:
            await self._read(ws._sock)
        finally:
            self._ws = None
            if self._ping_timer is not None:
                self._ping_timer.cancel()
                self._ping_timer = None
            writer = self._writer
            if writer is not None:
                writer.cancel()
            await self.close(wait=False, abort=True,
                             reason=self.server.reason.TRANSPORT_CLOSE)
            if writer is not None:
                await asyncio.gather(writer, return_exceptions=True)
            await ws.close()

    async def _read(self, sock: Any) -> None:
        timeout = self.server.ping_interval + self.server.ping_timeout
        limit = self.server.max_http_buffer_size
        while True:
            try:
                message = await sock.receive(timeout=timeout)
            except (TimeoutError, asyncio.CancelledError):
                return
            except Exception:
                return
            if message.type not in _DATA:
                return  # closed, closing or an error
            data = message.data
            if data and len(data) > limit:
                return  # as python-engineio: a packet too large ends the connection
            try:
                if message.type is WSMsgType.TEXT and take_event(self, data):
                    continue  # a client event for "/": handled in a task of its own
                await self.receive(packet.Packet(encoded_packet=data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return
            except Exception:
                self.server.logger.exception("Unknown receive error")


def adopt(socket: Any) -> None:
    """Make a python-engineio socket just created by the server a GatewaySocket (the server
    builds AsyncSocket itself; the class adds behaviour, no state of its own at creation)."""
    if type(socket) is AsyncSocket:
        socket.__class__ = GatewaySocket
