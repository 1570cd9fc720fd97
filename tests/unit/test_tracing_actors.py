"""Tracing of actor messages (server/actor_tracing.py) without I/O: a span per message, a child
of its sender's, locally and across nodes through the remote envelope's traceparent; crashes
marked, refusals not; timers start no trace; nothing without a tracer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.actor import Actor
from actors.clock import ManualClock
from actors.errors import ActorCrashed, Rejected
from actors.system import ActorSystem
from protocols.cluster import ClusterEnvelope, RemoteAsk, RemoteTell
from server.actor_tracing import ActorTracer
from server.tracing import Tracing
from storage.postgres.outbox import current_traceparent
from tests.support.tracing import named
from tests.unit.cluster.kit import Add, Cluster, Get


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Crash:
    pass


@dataclass(frozen=True)
class Refuse:
    pass


@dataclass(frozen=True)
class Later:
    pass


class Traced(Actor):
    """Answers with the trace context its message is handled in; makes a child span."""

    seen: list[trace.SpanContext]

    async def receive(self, message: Any) -> Any:
        match message:
            case Crash():
                raise RuntimeError("boom")
            case Refuse():
                raise Rejected("nope")
            case Later():
                self.context.schedule(1, Ping())
                return None
        # As a Postgres call would: a client span, dropped outside a trace.
        with trace.get_tracer("t").start_as_current_span("inside", kind=trace.SpanKind.CLIENT):
            pass
        Traced.seen.append(trace.get_current_span().get_span_context())
        return current_traceparent()


async def test_a_message_is_handled_in_a_span_child_of_its_sender(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    Traced.seen = []
    system = ActorSystem(tracer=ActorTracer(on.tracer))
    system.register(Traced)
    ref = system.ref(Traced, "k1")
    with on.tracer.start_as_current_span("request") as request:
        traceparent = await ref.ask(Ping(), timeout=2)
    await system.stop()
    spans = exporter.get_finished_spans()
    handled = named(spans, "actor.Traced.Ping")
    assert handled.parent is not None and handled.parent.span_id == \
        request.get_span_context().span_id
    assert handled.context.trace_id == request.get_span_context().trace_id
    assert handled.attributes is not None and handled.attributes["actor.key"] == "k1"
    assert named(spans, "inside").parent.span_id == handled.context.span_id  # type: ignore[union-attr]
    # What the actor writes (an outbox row) carries its span's context.
    assert traceparent == (f"00-{handled.context.trace_id:032x}-{handled.context.span_id:016x}-"
                           f"{handled.context.trace_flags:02x}")


async def test_outside_a_trace_or_without_a_tracer_nothing_is_traced(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    Traced.seen = []
    traced = ActorSystem(tracer=ActorTracer(on.tracer))
    untraced = ActorSystem()
    for system in (traced, untraced):
        system.register(Traced)
    assert await traced.ref(Traced, "k").ask(Ping(), timeout=2) is None  # no trace
    with on.tracer.start_as_current_span("request"):
        await untraced.ref(Traced, "k").ask(Ping(), timeout=2)  # no tracer: no span
        traced.ref(Traced, "k2").tell_nowait(Ping())  # wakes k2 inside this trace...
    traced.ref(Traced, "k2").tell_nowait(Ping())  # ...and this one is handled after it
    await traced.settled()
    await traced.stop()
    await untraced.stop()
    # No actor span from the tracer-less system (its actor ran in the asker's task context,
    # so its client span joined the request), one for the traced message.
    assert sorted(s.name for s in exporter.get_finished_spans()) == \
        ["actor.Traced.Ping", "inside", "inside", "request"]
    assert not Traced.seen[0].is_valid
    assert Traced.seen[2].is_valid
    assert not Traced.seen[3].is_valid  # not in the trace of the message that woke k2


async def test_a_crash_marks_the_span_and_a_refusal_does_not(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    system = ActorSystem(tracer=ActorTracer(on.tracer))
    system.register(Traced)
    ref = system.ref(Traced, "k")
    with on.tracer.start_as_current_span("request"):
        with pytest.raises(ActorCrashed):
            await ref.ask(Crash(), timeout=2)
        with pytest.raises(Rejected):
            await ref.ask(Refuse(), timeout=2)
    await system.stop()
    spans = exporter.get_finished_spans()
    crashed = named(spans, "actor.Traced.Crash")
    assert crashed.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in crashed.events] == ["exception"]
    refused = named(spans, "actor.Traced.Refuse")
    assert refused.status.status_code == trace.StatusCode.UNSET
    assert refused.attributes is not None and refused.attributes["actor.rejected"] == "nope"


async def test_a_timer_message_starts_no_trace(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    Traced.seen = []
    clock = ManualClock()
    system = ActorSystem(clock=clock, tracer=ActorTracer(on.tracer))
    system.register(Traced)
    with on.tracer.start_as_current_span("request"):
        await system.ref(Traced, "k").ask(Later(), timeout=2)  # arms a timer in this trace
    clock.advance(1)  # the timer's Ping
    await system.settled()
    await system.stop()
    assert Traced.seen and not Traced.seen[-1].is_valid
    assert sorted(s.name for s in exporter.get_finished_spans()) == \
        ["actor.Traced.Later", "request"]


async def test_the_trace_crosses_nodes_in_the_remote_envelope(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    cluster = Cluster("a", "b")
    wire: list[RemoteAsk | RemoteTell] = []
    decoder = msgspec.msgpack.Decoder(ClusterEnvelope)
    b_router = cluster.network.listening["b"]
    received = b_router.received

    def spy(payload: bytes) -> None:
        envelope = decoder.decode(payload)
        if isinstance(envelope, RemoteAsk | RemoteTell):
            wire.append(envelope)
        received(payload)

    b_router.received = spy  # type: ignore[method-assign]
    try:
        a, b = cluster.nodes["a"], cluster.nodes["b"]
        key = cluster.key_on("b")
        await a.ref(key).ask(Add(1), timeout=2)  # tracing off: no traceparent on the wire
        assert wire[-1].traceparent is None
        assert b"traceparent" not in msgspec.msgpack.encode(wire[-1])
        for node in (a, b):
            node.system.tracer = ActorTracer(on.tracer)
        with on.tracer.start_as_current_span("request") as request:
            await a.ref(key).ask(Add(2), timeout=2)
            await a.ref(key).tell(Add(3))
            await a.ref(key).ask(Get(), timeout=2)  # after the tell: it was handled
        assert [type(e).__name__ for e in wire[-3:]] == ["RemoteAsk", "RemoteTell", "RemoteAsk"]
        assert all(e.traceparent and f"{request.get_span_context().trace_id:032x}"
                   in e.traceparent for e in wire[-3:])
    finally:
        await cluster.stop()
    spans = exporter.get_finished_spans()
    handled = [s for s in spans if s.name == "actor.Counter.Add"]
    assert len(handled) == 2  # the untraced first Add made none
    for span in handled:
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.parent is not None and span.parent.is_remote
        assert span.parent.span_id == request.get_span_context().span_id


