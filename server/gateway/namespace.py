"""The one Socket.IO namespace object for "/": it owns the event pipeline every client event
goes through (rate limit, size limit, decode, handler, ack) and delegates to the small
per-domain handler modules (session, chat, presence). python-socketio allows one namespace
object per path, so domains compose here rather than as separate namespace classes.

A handler never sees a payload that did not decode, and whatever it raises becomes an
`{ok: false}` ack: a malformed event never crashes the socket or touches anyone else.

Every event's result and ack time, and every disconnect's reason, are recorded here, once
(server/gateway/metrics.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import msgspec
import socketio
from prometheus_client import CollectorRegistry

from actors.errors import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Rejected,
    Unavailable,
)
from protocols.base import Inbound
from protocols.socket import (
    BUSY,
    INTERNAL,
    INVALID,
    RATE_LIMITED,
    TIMEOUT,
    TOO_LARGE,
    UNAVAILABLE,
    UnknownEvent,
    decode,
)
from server.faults import RETRY_AFTER_SECONDS, unavailable_cause
from server.gateway import acks, calls, chat, presence, session
from server.gateway.connections import Connection, Gateway
from server.gateway.limits import MAX_EVENT_BYTES
from server.gateway.metrics import SocketMetrics
from server.gateway.tracing import traced_event

log = logging.getLogger("hubbub.gateway")
Handler = Callable[[Gateway, Connection, Any], Awaitable[dict[str, Any]]]

# Event name -> handler; the payload Struct per name is protocols.socket.CLIENT_EVENTS.
ROUTES: Mapping[str, Handler] = MappingProxyType({
    "room:join": chat.join,
    "room:leave": chat.leave,
    "message:send": chat.send,
    "typing": chat.typing,
    "message:read": chat.read,
    "presence:set": presence.set_status,
    "presence:subscribe": presence.subscribe,
    "auth:refresh": session.refresh,
    "call:invite": calls.invite,
    "call:accept": calls.accept,
    "call:reject": calls.reject,
    "call:hangup": calls.hang_up,
    "call:signal": calls.signal,
})
_size_encoder = msgspec.json.Encoder()
_clock = time.perf_counter


class GatewayNamespace(socketio.AsyncNamespace):
    def __init__(self, gateway: Gateway, metrics: SocketMetrics | None = None) -> None:
        super().__init__("/")
        self.gateway = gateway
        # Without the app's (a test's namespace): recorded in a registry nobody reads.
        self.metrics = metrics if metrics is not None else SocketMetrics(CollectorRegistry())

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        # python-socketio routes its own connect/disconnect through here too. A client can
        # also *send* events named "connect" or "disconnect"; those arrive while the socket
        # is fully connected, the real ones never do.
        sid = args[0] if args else None
        live = isinstance(sid, str) and self.server.manager.is_connected(sid, "/")
        if event == "connect" and not live:
            return await session.connect(self.gateway, sid, args[2] if len(args) > 2 else None)
        if event == "disconnect" and not live:
            # python-socketio passes the reason (engineio's Server.reason) after the sid.
            self.metrics.disconnected(args[1] if len(args) > 1 else None,
                                      self.gateway.connections.get(sid))
            return await session.disconnect(self.gateway, sid)
        return await traced_event(event, sid, dispatch(self.gateway, sid, event, args[1:],
                                                       self.metrics))


async def dispatch(gw: Gateway, sid: Any, event: Any, args: tuple[Any, ...],
                   metrics: SocketMetrics) -> dict[str, Any]:
    """Run one client event through the pipeline and return its ack; record its result and
    how long the ack took in `metrics`."""
    started = _clock()
    ack = await _pipeline(gw, sid, event, args)
    metrics.record(event, ack, _clock() - started)
    return ack


async def _pipeline(gw: Gateway, sid: Any, event: Any,
                    args: tuple[Any, ...]) -> dict[str, Any]:
    conn = gw.connections.get(sid) if isinstance(sid, str) else None
    if conn is None:
        return acks.error(UNAVAILABLE, "this connection is closing")
    wait = conn.bucket.take()
    if wait:
        return acks.error(RATE_LIMITED, "too many events on this connection; slow down",
                          retry_after=max(0.001, round(wait, 3)))
    try:
        size = len(_size_encoder.encode(args))
    except (TypeError, OverflowError, ValueError):
        return acks.error(INVALID, "the payload is not JSON")
    if size > MAX_EVENT_BYTES:
        return acks.error(TOO_LARGE, f"an event payload is at most {MAX_EVENT_BYTES} bytes")
    try:
        payload: Inbound = decode(event, args)
    except UnknownEvent as exc:
        return acks.error(INVALID, str(exc))
    except msgspec.ValidationError as exc:
        return acks.error(INVALID, str(exc))
    return await _handle(gw, conn, event, payload)


async def _handle(gw: Gateway, conn: Connection, event: str,
                  payload: Inbound) -> dict[str, Any]:
    try:
        return await ROUTES[event](gw, conn, payload)
    except Rejected as refusal:
        return acks.error(refusal.code, refusal.message)
    except AskTimeout:
        return acks.error(TIMEOUT, "no answer in time; the action may still take effect")
    except MailboxFull:
        return acks.error(BUSY, "too busy right now; retry shortly")
    except Unavailable as gone:
        # Its node died or left and the cluster has not settled yet: retrying is safe.
        return acks.error(UNAVAILABLE, "temporarily unavailable; retry shortly",
                          retry_after=gone.retry_after)
    except ActorStopped:
        return acks.error(UNAVAILABLE, "the server is shutting down; reconnect")
    except Exception as exc:
        # Postgres (or Redis) down or starting, also behind an actor's crash: retry later.
        if unavailable_cause(exc) is not None:
            if not isinstance(exc, ActorCrashed):  # the runtime logged the crash
                log.warning("service unavailable for %s", event, extra={
                    "event": event, "user_id": conn.user_id,
                    "error": f"{type(exc).__name__}: {exc}"})
            return acks.error(UNAVAILABLE, "a service is temporarily unavailable; retry "
                              "shortly", retry_after=float(RETRY_AFTER_SECONDS))
        if isinstance(exc, ActorCrashed):
            return acks.error(INTERNAL, "internal error")  # the runtime logged the crash
        log.exception("gateway handler for %s failed", event,
                      extra={"event": event, "user_id": conn.user_id})
        return acks.error(INTERNAL, "internal error")
