"""The fast path of a client's Socket.IO event, from its websocket frame to its ack.

Through python-engineio and python-socketio, each `42["event",...]` frame is parsed twice (an
Engine.IO packet, then a Socket.IO one, character by character), goes through three layers of
handler lookup and logging, and its ack is built as two packet objects before it is written.
For the frames that make up nearly all of the traffic (`make bench-chat`: every chat message),
`take_event` does the same work once: a text frame `42["event",...]` or `42<id>["event",...]`
of a socket connected to "/" is decoded with msgspec, and one task runs the gateway's
pipeline (server/gateway/namespace.py `dispatch`) and writes the ack (`43<id>[...]`) to the
transport directly when DirectLinks allows, else through Engine.IO's queue, as
python-socketio would have sent it.

It is python-socketio 5.18's `_handle_event` / `_handle_event_internal` for that one case, at
the same point in the socket's read loop: python-socketio runs python-engineio's `message`
handler inline (it turns engineio's async_handlers off) and starts a task per event there,
so events still start in arrival order, one task each. What python-engineio 4.15's
`AsyncSocket.receive` does for a MESSAGE besides calling that handler is one log line, kept.
Everything else returns False and takes the old path unchanged: other packets, namespaces,
binary events and their attachments, ids or payloads in forms python-socketio parses but this
does not, JSON msgspec refuses (python-socketio's stdlib fallback, server/gateway/
json_codec.py), sockets not connected to "/" (python-socketio logs and drops the event), and
servers whose "/" events are not all GatewayNamespace's (handlers registered with `on`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import msgspec
import socketio

from server.gateway.direct import message_frame
from server.gateway.json_codec import holds_binary
from server.gateway.namespace import GatewayNamespace, dispatch
from server.gateway.tracing import traced_event

log = logging.getLogger("hubbub.gateway")
_decode = msgspec.json.Decoder().decode
_MAX_ID_DIGITS = 18  # python-socketio takes up to 100; longer ones go its way
_SEPARATORS = (",", ":")
# The events in flight: the loop keeps only weak references to tasks.
_running: set[asyncio.Task[None]] = set()


def parse(text: str) -> tuple[int | None, list[Any]] | None:
    """`42["event",...]` or `42<id>["event",...]` -> (ack id or None, [event, *args]); None
    for anything else, to be parsed by python-socketio."""
    if not text.startswith("42"):
        return None
    start = 2
    ack_id = None
    if text[2:3] != "[":
        end = 2
        size = len(text)
        while end < size and "0" <= text[end] <= "9":
            end += 1
        if end == 2 or end - 2 > _MAX_ID_DIGITS or text[end:end + 1] != "[":
            return None  # no id, a namespace, attachments, or a form python-socketio decides
        ack_id = int(text[2:end])  # "42007[" is id 7, as python-socketio reads it
        start = end
    try:
        data = _decode(text[start:])
    except msgspec.DecodeError:
        return None
    if type(data) is not list or not data:
        return None  # python-socketio's path refuses it as a bad frame
    return ack_id, data


def ack_packet(ack_id: int, data: list[Any], json: Any) -> str | None:
    """The encoded Socket.IO ACK for "/" as python-socketio's Packet.encode writes it (`json`
    is the server's packet class's); None when it would be a binary ack."""
    if holds_binary(data):
        return None
    return "3" + str(ack_id) + json.dumps(data, separators=_SEPARATORS)


class InboundPath:
    """The fast path for one Socket.IO server (its GatewayNamespace on "/")."""

    __slots__ = ("eio", "links", "namespace", "sio")

    def __init__(self, sio: socketio.AsyncServer, namespace: GatewayNamespace) -> None:
        self.sio = sio
        self.eio = sio.eio
        self.links = getattr(sio.eio, "links", None)
        self.namespace = namespace

    def take(self, socket: Any, text: str) -> bool:
        """Start handling the event in `text` from `socket`; False: not for this path."""
        sio = self.sio
        eio_sid = socket.sid
        handlers = sio.handlers
        if handlers and ("/" in handlers or "*" in handlers):
            return False  # python-socketio would call those first
        if eio_sid in sio._binary_packet:
            return False  # python-socketio takes this frame as a binary attachment
        parsed = parse(text)
        if parsed is None:
            return False
        manager = sio.manager
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not manager.is_connected(sid, "/"):
            return False  # python-socketio logs it and drops it
        ack_id, data = parsed
        # The lines python-engineio's receive and python-socketio's _handle_event log (at
        # INFO: server/logs.py keeps those loggers at WARNING or above, but a test may not).
        eio_log = self.eio.logger
        if eio_log.isEnabledFor(logging.INFO):
            eio_log.info("%s: Received packet %s data %s", eio_sid, "MESSAGE", text[1:])
        sio.logger.info('received event "%s" from %s [%s]', data[0], sid, "/")
        task = asyncio.get_running_loop().create_task(self._handle(eio_sid, sid, ack_id, data))
        _running.add(task)
        task.add_done_callback(_running.discard)
        return True

    async def _handle(self, eio_sid: str, sid: str, ack_id: int | None,
                      data: list[Any]) -> None:
        event = data[0]
        try:
            if event == "connect" or event == "disconnect":
                # GatewayNamespace tells a client's event of that name from its own.
                result = await self.namespace.trigger_event(event, sid, *data[1:])
            else:
                namespace = self.namespace
                result = await traced_event(event, sid, dispatch(
                    namespace.gateway, sid, event, tuple(data[1:]), namespace.metrics))
            if ack_id is not None:
                await self._ack(eio_sid, ack_id, result)
        except Exception:
            log.exception("client event %s failed", str(event)[:80])

    async def _ack(self, eio_sid: str, ack_id: int, result: Any) -> None:
        # As python-socketio: a tuple is several arguments, None none.
        data = [] if result is None else list(result) if isinstance(result, tuple) \
            else [result]
        sio = self.sio
        encoded = ack_packet(ack_id, data, sio.packet_class.json)
        links = self.links
        if encoded is None or links is None:
            await sio._send_packet(eio_sid, sio.packet_class(
                socketio.packet.ACK, namespace="/", id=ack_id, data=data))
        elif not links.write(eio_sid, message_frame(encoded)):
            await self.eio.queue_message(eio_sid, encoded)


_paths: weakref.WeakKeyDictionary[Any, InboundPath] = weakref.WeakKeyDictionary()


def path_of(eio: Any) -> InboundPath | None:
    """The fast path of the Socket.IO server on Engine.IO server `eio`; None when it has
    none: no GatewayNamespace on "/", or handlers not run the way python-socketio sets them
    up (Engine.IO's inline, Socket.IO's events in tasks), which the path mirrors."""
    path = _paths.get(eio)
    if path is not None:
        return path
    sio = getattr(eio.handlers.get("message"), "__self__", None)
    if not isinstance(sio, socketio.AsyncServer) or not sio.async_handlers \
            or eio.async_handlers:
        return None
    namespace = sio.namespace_handlers.get("/")
    if not isinstance(namespace, GatewayNamespace):
        return None
    path = _paths[eio] = InboundPath(sio, namespace)
    return path


def take_event(socket: Any, text: str) -> bool:
    """Handle text frame `text` of Engine.IO socket `socket` here when it is a client event
    for "/" (see the module's docstring); False: the caller takes python-engineio's path."""
    if not text.startswith("42"):
        return False
    path = path_of(socket.server)
    return path is not None and path.take(socket, text)
