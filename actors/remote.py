"""Remote delivery: `tell` and `ask` to an actor hosted on another node.

The routing logic lives here, pure asyncio; a `Transport` adapter (Redis pub/sub in
storage/redis/cluster_transport.py, an in-memory one in tests) only moves bytes between
nodes. Messages are msgspec-encoded under the names of a typed registry
(protocols/actor_messages.py); replies and typed errors (Rejected with its code, crashed,
timeout, busy, unavailable) come back the same way and are raised as the same exceptions a
local ask raises.

Delivery semantics (the transport is at most once):
- tell: sent once. When the target node is not listening (the transport reached nobody)
  the sender learns it at once and `RemoteDelivery.deliver` raises Unavailable; the actor
  system then waits for the next membership view and sends to the new owner. A tell that
  reached a live node and was lost there (a crash) is lost: callers that must not lose one
  write durable state first (session records, the database) and actors reload it.
- ask: sent once, answered once or not at all; it always ends, with the reply, a typed error
  or AskTimeout. An ask that times out may still have been processed: callers retry with
  idempotent messages (client_id, session id).
- order: messages from one node to one node arrive in the order they were sent.

Tracing: when the local host has a tracer (ActorSystem.tracer) and a message is sent inside a
trace, its RemoteTell / RemoteAsk carries the W3C `traceparent` of the sender's context; the
receiving node hands the context it names to the runtime with the message, whose span is then
a child of the sender's (one trace across nodes). Nodes without tracing send none and ignore
one they receive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from actors.activation import MessageTracer
from actors.errors import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Rejected,
    Unavailable,
)
from protocols.actor_messages import MessageRegistry, UnknownType
from protocols.cluster import (
    ClusterEnvelope,
    RemoteAsk,
    RemoteError,
    RemoteReply,
    RemoteTell,
    TransportFull,
    ViewChanged,
)

log = logging.getLogger("hubbub.cluster")
# A message is passed on at most this many times by nodes that no longer own its key (views
# disagree briefly during a change); past that, an ask is answered `unavailable`.
MAX_HOPS = 3


class Transport(Protocol):
    """Moves opaque payloads between nodes. Sends from one node to one node arrive in the
    order `send` was called."""

    def send(self, node: str, payload: bytes) -> asyncio.Future[int]:
        """Queue `payload` for `node` now (synchronously, so call order is send order); the
        future gives how many listeners received it: 0 means the node is not listening
        (gone); it fails when the payload could not be sent. Raises
        protocols.cluster.TransportFull when the outbound queue is full."""
        ...

    def broadcast(self, payload: bytes) -> asyncio.Future[int]:
        """Queue `payload` for every node (including this one)."""
        ...


class LocalHost(Protocol):
    """What the router needs of this node's actor system for inbound messages."""

    def accept_remote(self, kind: str, key: str, message: Any,
                      reply: asyncio.Future[Any] | None, view: int, hops: int,
                      trace: object | None = None) -> None:
        """Deliver to the local activation, or pass on to the owner this node knows of.
        `trace`: the sender's trace context (MessageTracer.from_traceparent), or None."""
        ...

    def view_hint(self, version: int) -> None:
        """Another node has seen membership view `version`: re-read the view if newer."""
        ...

    @property
    def tracer(self) -> MessageTracer | None:
        """Traces messages (None: tracing is off)."""
        ...


@dataclass
class RemoteStats:
    sent: dict[str, int] = field(default_factory=lambda: {"tell": 0, "ask": 0, "reply": 0})
    received: dict[str, int] = field(default_factory=lambda: {"tell": 0, "ask": 0,
                                                               "reply": 0})
    undeliverable: int = 0  # sends that reached no listener
    dropped: int = 0  # inbound payloads that did not decode


def to_error(exc: BaseException) -> RemoteError:
    match exc:
        case Rejected():
            return RemoteError(kind="rejected", code=exc.code, message=exc.message)
        case ActorCrashed():
            return RemoteError(kind="crashed", message=str(exc))
        case AskTimeout():
            return RemoteError(kind="timeout", message=str(exc))
        case MailboxFull():
            return RemoteError(kind="busy", message=str(exc))
        case Unavailable():
            return RemoteError(kind="unavailable", message=str(exc),
                               retry_after=exc.retry_after)
        case ActorStopped():
            return RemoteError(kind="unavailable", message="the node is stopping",
                               retry_after=1.0)
        case UnknownType():
            return RemoteError(kind="unknown_message", message=str(exc))
    return RemoteError(kind="crashed", message=f"{type(exc).__name__}: {exc}")


def from_error(error: RemoteError) -> Exception:
    match error.kind:
        case "rejected":
            return Rejected(error.code, error.message)
        case "timeout":
            return AskTimeout(error.message)
        case "busy":
            return MailboxFull(error.message)
        case "unavailable" | "stopped":
            return Unavailable(error.message, retry_after=error.retry_after or 1.0)
        case "unknown_message":
            return Rejected("unknown_message", error.message)
    return ActorCrashed(error.message)


class RemoteRouter:
    """actors.placement.RemoteDelivery over a Transport. `received(payload)` is the
    transport's inbound callback."""

    def __init__(self, node_id: str, registry: MessageRegistry,
                 view_version: Callable[[], int]) -> None:
        self.node_id = node_id
        self._registry = registry
        self._view_version = view_version
        self._transport: Transport | None = None
        self._host: LocalHost | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ClusterEnvelope)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = RemoteStats()
        # Called with (kind, key, message) when a tell sent without waiting reached nobody.
        self.on_undelivered: Callable[[str, str, Any], None] | None = None
        # Called with the seconds each remote ask took (metrics).
        self.on_ask_latency: Callable[[float], None] | None = None
        # time.monotonic() when another node last sent this node anything (None: never).
        self.last_heard: float | None = None

    def knows(self, message: Any) -> bool:
        return self._registry.knows(message)

    def bind(self, transport: Transport, host: LocalHost) -> None:
        self._transport = transport
        self._host = host

    # -- outbound ----------------------------------------------------------------------------

    def _send(self, node: str, envelope: ClusterEnvelope) -> asyncio.Future[int]:
        assert self._transport is not None, "bind() the router before sending"
        self.stats.sent[envelope.__struct_config__.tag] += 1  # type: ignore[index]
        try:
            return self._transport.send(node, self._encoder.encode(envelope))
        except TransportFull:
            raise MailboxFull("too many messages waiting to leave this node") from None

    def _traceparent(self) -> str | None:
        tracer = None if self._host is None else self._host.tracer
        return None if tracer is None else tracer.traceparent()

    def _trace_of(self, traceparent: str | None) -> object | None:
        if traceparent is None or self._host is None:
            return None
        tracer = self._host.tracer
        return None if tracer is None else tracer.from_traceparent(traceparent)

    def _tell_envelope(self, kind: str, key: str, message: Any, hops: int) -> RemoteTell:
        name, body = self._registry.encode(message)
        return RemoteTell(kind=kind, key=key, type=name, body=body, sender=self.node_id,
                          view=self._view_version(), hops=hops,
                          traceparent=self._traceparent())

    async def deliver(self, node: str, kind: str, key: str, message: Any,
                      hops: int = 0) -> None:
        """Raises Unavailable when `node` is not listening (nothing was delivered)."""
        received = await _received(self._send(node, self._tell_envelope(kind, key, message,
                                                                         hops)))
        if not received:
            self.stats.undeliverable += 1
            raise Unavailable(f"node {node} is not listening")

    def deliver_nowait(self, node: str, kind: str, key: str, message: Any) -> None:
        """Queue a tell without waiting. Should it reach nobody, `on_undelivered` gets it
        back to route again once the membership view has moved on."""
        sent = self._send(node, self._tell_envelope(kind, key, message, 0))

        def check(done: asyncio.Future[int]) -> None:
            if done.cancelled() or done.exception() is not None or not done.result():
                self.stats.undeliverable += 1
                if self.on_undelivered is not None:
                    self.on_undelivered(kind, key, message)

        sent.add_done_callback(check)

    async def ask(self, node: str, kind: str, key: str, message: Any, timeout: float,
                  hops: int = 0) -> Any:
        name, body = self._registry.encode(message)
        ask_id = next(self._ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ask_id] = reply
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                received = await _received(self._send(node, RemoteAsk(
                    id=ask_id, kind=kind, key=key, type=name, body=body, sender=self.node_id,
                    view=self._view_version(), timeout=timeout, hops=hops,
                    traceparent=self._traceparent())))
                if not received:
                    self.stats.undeliverable += 1
                    raise Unavailable(f"node {node} is not listening")
                return await reply
        except TimeoutError:
            raise AskTimeout(f"{kind}/{key} on {node} did not answer "
                             f"{type(message).__name__} within {timeout}s") from None
        finally:
            self._pending.pop(ask_id, None)
            if self.on_ask_latency is not None:
                self.on_ask_latency(time.perf_counter() - started)

    def announce_view(self, version: int) -> None:
        """Tell every node that membership view `version` exists (they re-read it)."""
        assert self._transport is not None
        self._transport.broadcast(self._encoder.encode(
            ViewChanged(version=version, sender=self.node_id))).add_done_callback(_unheard)

    # -- inbound -----------------------------------------------------------------------------

    def received(self, payload: bytes) -> None:
        """The transport's callback for every payload addressed to this node."""
        try:
            envelope = self._decoder.decode(payload)
        except msgspec.DecodeError:
            self.stats.dropped += 1
            log.warning("dropped an undecodable cluster message (%d bytes)", len(payload))
            return
        if not isinstance(envelope, ViewChanged) or envelope.sender != self.node_id:
            self.last_heard = time.monotonic()
        match envelope:
            case RemoteReply():
                self.stats.received["reply"] += 1
                self._replied(envelope)
            case RemoteTell():
                self.stats.received["tell"] += 1
                self._told(envelope)
            case RemoteAsk():
                self.stats.received["ask"] += 1
                self._asked(envelope)
            case ViewChanged():
                if envelope.sender != self.node_id and self._host is not None:
                    self._host.view_hint(envelope.version)

    def _replied(self, reply: RemoteReply) -> None:
        waiting = self._pending.pop(reply.id, None)
        if waiting is None or waiting.done():
            return  # the asker gave up (timeout) already
        if reply.error is not None:
            waiting.set_exception(from_error(reply.error))
            return
        try:
            waiting.set_result(self._registry.decode(reply.type, reply.body))
        except (UnknownType, msgspec.DecodeError) as exc:
            waiting.set_exception(ActorCrashed(f"undecodable reply: {exc}"))

    def _told(self, tell: RemoteTell) -> None:
        assert self._host is not None
        try:
            message = self._registry.decode(tell.type, tell.body)
        except (UnknownType, msgspec.DecodeError):
            self.stats.dropped += 1
            log.warning("dropped a tell of unknown type %r for %s", tell.type, tell.kind)
            return
        self._host.view_hint(tell.view)
        try:
            self._host.accept_remote(tell.kind, tell.key, message, None, tell.view, tell.hops,
                                     self._trace_of(tell.traceparent))
        except Exception:
            log.warning("tell %s to %s/%s not accepted", tell.type, tell.kind, tell.key,
                        exc_info=True)

    def _asked(self, ask: RemoteAsk) -> None:
        assert self._host is not None
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        # The asker stops waiting after `timeout`; answering later is pointless.
        expiry = loop.call_later(ask.timeout, _expire, reply, ask)
        reply.add_done_callback(lambda done: self._answer(ask, done, expiry))
        try:
            message = self._registry.decode(ask.type, ask.body)
        except (UnknownType, msgspec.DecodeError) as exc:
            reply.set_exception(UnknownType(str(exc)))
            return
        self._host.view_hint(ask.view)
        try:
            self._host.accept_remote(ask.kind, ask.key, message, reply, ask.view, ask.hops,
                                     self._trace_of(ask.traceparent))
        except Exception as exc:  # e.g. a full mailbox or a stopped system: say so
            if not reply.done():
                reply.set_exception(exc)

    def _answer(self, ask: RemoteAsk, done: asyncio.Future[Any],
                expiry: asyncio.TimerHandle) -> None:
        expiry.cancel()
        exc = done.exception() if not done.cancelled() else ActorStopped("cancelled")
        if exc is not None:
            envelope = RemoteReply(id=ask.id, error=to_error(exc))
        else:
            try:
                name, body = self._registry.encode(done.result())
                envelope = RemoteReply(id=ask.id, type=name, body=body)
            except UnknownType as unknown:
                log.error("reply to %s is not a registered type: %s", ask.type, unknown)
                envelope = RemoteReply(id=ask.id, error=RemoteError(
                    kind="crashed", message="unregistered reply type"))
        self._send(ask.sender, envelope).add_done_callback(_unheard)

    # -- shutdown ----------------------------------------------------------------------------

    def fail_pending(self) -> None:
        """Stopping: asks still waiting for a reply end now."""
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(ActorStopped("the node is stopping"))
        self._pending.clear()


async def _received(sent: asyncio.Future[int]) -> int:
    """How many listeners received a send; 0 when it could not be sent."""
    try:
        return await sent
    except Exception as exc:  # the transport's failure (e.g. Redis gone): nothing left
        log.debug("send failed: %s", exc)
        return 0


def _unheard(sent: asyncio.Future[int]) -> None:
    """For sends nobody waits on (replies, view announcements): an asker times out, a view
    is re-read on the next heartbeat; a failure is only retrieved."""
    if not sent.cancelled():
        sent.exception()


def _expire(reply: asyncio.Future[Any], ask: RemoteAsk) -> None:
    if not reply.done():
        reply.set_exception(AskTimeout(f"{ask.kind}/{ask.key} did not answer {ask.type} "
                                       f"within {ask.timeout}s"))
