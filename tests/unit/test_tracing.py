"""Tracing (server/tracing.py) without I/O: the OTEL_* configuration, trace ids in log lines,
Socket.IO event spans, consumer spans from a traceparent, the relay's publish spans, and
nothing at all with tracing off. Actor messages: test_tracing_actors.py."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from server.events.relay import OutboxRelay, RelayOptions
from server.gateway.tracing import traced_event
from server.logs import JsonFormatter
from server.startup import StartupError
from server.tracing import (
    InTraceOnly,
    Tracing,
    active_tracer,
    exporters_from_env,
    sampler_from_env,
    setup_tracing,
)
from storage.event_delivery import Delivery
from storage.memory.dead_letters import MemoryDeadLetters
from storage.memory.event_bus import InProcessEventBus
from storage.postgres.outbox import current_traceparent
from storage.postgres.outbox_relay import PendingEvent
from tests.support.tracing import memory_tracing, named
from tests.unit.events_kit import FakeSleep, Recorder, user_event

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
INCOMING_TRACE = 0x0AF7651916CD43DD8448EB211C80319C


# -- configuration ------------------------------------------------------------------------------


def test_off_unless_the_environment_asks() -> None:
    assert exporters_from_env({}) == ()
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "none"}) == ()
    assert exporters_from_env({"OTEL_SERVICE_NAME": "x"}) == ()
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp"}) == ("otlp",)
    assert exporters_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ("otlp",)
    assert exporters_from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}) == \
        ("otlp",)
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp, console"}) == ("otlp", "console")
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp",
                               "OTEL_SDK_DISABLED": "true"}) == ()


def test_values_that_cannot_work_name_their_variable() -> None:
    with pytest.raises(StartupError, match=r"^OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(StartupError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc'"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(StartupError, match=r"^OTEL_TRACES_SAMPLER: unknown sampler"):
        sampler_from_env({"OTEL_TRACES_SAMPLER": "sometimes"})
    with pytest.raises(StartupError, match=r"^OTEL_TRACES_SAMPLER_ARG"):
        sampler_from_env({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"})


def test_sampler_defaults_to_parent_based_and_keeps_background_clients_out() -> None:
    default = sampler_from_env({})
    assert isinstance(default, InTraceOnly) and isinstance(default.inner, ParentBased)
    ratio = sampler_from_env({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                              "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert "0.25" in ratio.get_description()
    assert isinstance(sampler_from_env({"OTEL_TRACES_SAMPLER": "traceidratio"}).inner,
                      TraceIdRatioBased)

    provider = TracerProvider(sampler=default)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET", kind=trace.SpanKind.CLIENT):
        pass  # a heartbeat: no trace of its own
    with tracer.start_as_current_span("POST /x", kind=trace.SpanKind.SERVER), \
            tracer.start_as_current_span("INSERT", kind=trace.SpanKind.CLIENT):
        pass
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["INSERT", "POST /x"]


def test_off_installs_nothing() -> None:
    application = web.Application
    assert setup_tracing({}) is None
    assert setup_tracing({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None
    assert active_tracer() is None
    assert web.Application is application  # no server middleware
    assert current_traceparent() is None


# -- logs -------------------------------------------------------------------------------------


def _line(message: str) -> dict[str, Any]:
    record = logging.LogRecord("hubbub.test", logging.INFO, __file__, 1, message, (), None)
    return json.loads(JsonFormatter("n1").format(record))


def test_log_lines_carry_the_trace_only_inside_a_recorded_span() -> None:
    provider, _ = memory_tracing()
    tracer = provider.get_tracer("t")
    assert "trace_id" not in _line("outside")
    with tracer.start_as_current_span("work") as span:
        line = _line("inside")
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    unsampled = trace.NonRecordingSpan(trace.SpanContext(
        INCOMING_TRACE, 0x1234, is_remote=True, trace_flags=trace.TraceFlags(0)))
    with trace.use_span(unsampled):
        assert "trace_id" not in _line("not sampled")


# -- Socket.IO events -------------------------------------------------------------------------


async def _dispatch(ack: dict[str, Any]) -> dict[str, Any]:
    return ack


async def test_a_socket_event_is_a_trace_of_its_own_only_with_tracing_on() -> None:
    coro = _dispatch({"ok": True})
    assert traced_event("message:send", "sid1", coro) is coro  # off: the very same coroutine
    await coro
    provider, exporter = memory_tracing()
    exporter.clear()
    on = setup_tracing(provider=provider)
    assert on is not None
    try:
        with on.tracer.start_as_current_span("the socket's connection"):
            ack = await traced_event("message:send", "sid1", _dispatch({"ok": True}))
            refused = await traced_event("room:join", "sid1", _dispatch(
                {"ok": False, "error": {"code": "room_not_found", "message": "x"}}))
            await traced_event("../etc", "sid1", _dispatch({"ok": False}))
    finally:
        on.shutdown()
    assert ack == {"ok": True} and refused["ok"] is False
    spans = exporter.get_finished_spans()
    sent = named(spans, "socketio message:send")
    assert sent.parent is None and sent.kind == trace.SpanKind.SERVER  # a root
    assert sent.attributes is not None and sent.attributes["socketio.ok"] is True
    joined = named(spans, "socketio room:join")
    assert joined.attributes is not None and joined.attributes["socketio.error"] == \
        "room_not_found"
    named(spans, "socketio unknown")
    assert active_tracer() is None


# -- events: consumers and the relay ------------------------------------------------------------


async def test_an_event_with_a_traceparent_is_handled_in_a_consumer_span(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    _, exporter = tracing
    seen: list[trace.SpanContext] = []

    async def handler(event: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())

    delivery = Delivery(dead_letters=MemoryDeadLetters(), sleep=FakeSleep())
    stopping = asyncio.Event()
    event = user_event()
    assert await delivery.deliver("feed.fanout", handler, event, stopping) == "handled"
    assert not seen[-1].is_valid and not exporter.get_finished_spans()
    await delivery.deliver("feed.fanout", handler, event, stopping, INCOMING)
    span = named(exporter.get_finished_spans(), "feed.fanout follow.created")
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.context.trace_id == INCOMING_TRACE and span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert seen[-1].span_id == span.context.span_id  # current while the handler ran


@dataclass
class OneBatch:
    """An OutboxStore (server/events/ports.py) holding one batch of rows, then nothing."""

    rows: list[tuple[int, Any]]
    marked: asyncio.Event

    async def try_lead(self) -> bool:
        return True

    async def resign(self) -> None:
        pass

    async def wait_for_events(self, timeout: float) -> None:
        await asyncio.Event().wait()

    async def pending(self, limit: int) -> list[tuple[int, Any]]:
        rows, self.rows = self.rows, []
        return rows

    async def mark_published(self, seqs: Any) -> None:
        self.marked.set()

    async def backlog(self) -> tuple[int, float]:
        return 0, 0.0

    async def purge(self, **_: Any) -> int:
        return 0


async def test_the_relay_publishes_each_row_in_its_trace(
        tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    _, exporter = tracing
    recorder = Recorder()
    bus = InProcessEventBus(dead_letters=MemoryDeadLetters())
    bus.subscribe("notifications", ["hubbub.users"], recorder)
    await bus.start()
    batch_row = [user_event(), user_event()]  # a chat-like batch row: one seq, one trace
    untraced = user_event()
    store = OneBatch([PendingEvent(1, batch_row[0], INCOMING),
                      PendingEvent(1, batch_row[1], INCOMING), PendingEvent(2, untraced)],
                     asyncio.Event())
    relay = OutboxRelay(store, bus, options=RelayOptions(coalesce=0, poll_interval=3600))
    await relay.start()
    try:
        await asyncio.wait_for(store.marked.wait(), 5)
    finally:
        await relay.stop()
        await bus.stop()
    assert recorder.ids() == [e.id for e in (*batch_row, untraced)]
    spans = exporter.get_finished_spans()
    publish = named(spans, "publish hubbub.users")  # one for the row's trace
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.context.trace_id == INCOMING_TRACE
    consumed = [s for s in spans if s.name == "notifications follow.created"]
    assert len(consumed) == 2  # the untraced row's event made none
    assert all(s.parent is not None and s.parent.span_id == publish.context.span_id
               for s in consumed)
