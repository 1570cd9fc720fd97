"""Writing Engine.IO packets straight to a websocket's transport.

python-engineio queues every outbound packet of a socket and a writer task per socket sends it
(python-socketio adds a task per recipient of each emit): at ten recipients per chat message,
those queues and task switches cost more CPU than the rest of the message (`make bench-chat`).
A server-to-client websocket frame is not masked, so the frame of a packet is the same bytes
for every recipient: `text_frame` builds it once and `DirectLinks.write` hands it to each
socket's transport, which buffers it in the same call (asyncio transports never block).

Order is kept: a packet goes direct only while nothing of that socket waits in Engine.IO's
queue (its handshake, a packet queued during an upgrade from polling, ...) or is being written
from it (`writing`, server/gateway/engine_socket.py), and its transport is not paused by flow
control (Engine.IO's writer may then hold packets it took from the queue); otherwise it is
queued behind them as before. Polling sockets always use the queue.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import engineio
from engineio import packet as eio_packet

from server.gateway.socket_queue import SocketQueue

_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_TEXT = 0x81  # FIN + text opcode


def text_frame(payload: bytes) -> bytes:
    """One unmasked websocket text frame (RFC 6455 5.2) carrying `payload` (UTF-8)."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    if size < 65536:
        return _LEN16.pack(_TEXT, 126, size) + payload
    return _LEN64.pack(_TEXT, 127, size) + payload


def message_frame(socketio_packet: str) -> bytes:
    """The frame of an Engine.IO MESSAGE packet carrying an encoded Socket.IO packet."""
    return text_frame(b"4" + socketio_packet.encode())


@dataclass(slots=True)
class _Link:
    socket: Any  # engineio.async_socket.AsyncSocket
    transport: Any  # asyncio.Transport of the websocket's connection
    protocol: Any  # aiohttp's protocol of that connection (flow control)


class DirectLinks:
    """The websocket transports of this node's Engine.IO sockets, by Engine.IO sid."""

    def __init__(self) -> None:
        self._links: dict[str, _Link] = {}
        self.direct = 0  # packets written directly (metrics)
        self.queued = 0  # packets that had to go through Engine.IO's queue

    def add(self, eio_sid: str, socket: Any, transport: Any, protocol: Any) -> None:
        self._links[eio_sid] = _Link(socket, transport, protocol)

    def discard(self, eio_sid: str) -> None:
        self._links.pop(eio_sid, None)

    def __len__(self) -> int:
        return len(self._links)

    def write(self, eio_sid: str, frame: bytes) -> bool:
        """Write `frame` to the socket now when that keeps its order; False: queue it."""
        link = self._links.get(eio_sid)
        if link is None:
            self.queued += 1
            return False
        socket = link.socket
        if (not socket.upgraded or socket.upgrading or socket.closing or socket.closed
                or not socket.queue.empty() or getattr(socket, "writing", False)
                or link.protocol.writing_paused or link.transport.is_closing()):
            self.queued += 1
            return False
        link.transport.write(frame)
        self.direct += 1
        return True


class DirectEngineIO(engineio.AsyncServer):
    """python-engineio's AsyncServer whose packets to websocket sockets go direct."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.links = DirectLinks()

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        """Each socket's outbound queue (python-engineio's only use of this): one that holds
        no memory while empty, which, with packets written direct, is nearly always."""
        return SocketQueue()

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        if pkt.packet_type == eio_packet.MESSAGE and isinstance(pkt.data, str) and \
                self.links.write(sid, message_frame(pkt.data)):
            return
        await super().send_packet(sid, pkt)

    async def queue_message(self, sid: str, data: str) -> None:
        """Send through Engine.IO's queue (the order-keeping fallback of a direct write)."""
        await super().send_packet(sid, eio_packet.Packet(eio_packet.MESSAGE, data=data))
