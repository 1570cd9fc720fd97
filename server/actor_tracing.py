"""Actor messages in traces: actors.activation.MessageTracer over OpenTelemetry. With
tracing on (server/tracing.py), each message an actor handles is a span, child of the
sender's span, on whichever node the actor lives (the context travels as a W3C traceparent
in remote envelopes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actors.activation import MessageSpan
from actors.ref import ActorRef

_w3c = TraceContextTextMapPropagator()


def _traceparent(span_context: trace.SpanContext) -> str:
    return (f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}")


class _MessageSpan:
    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self._span = span
        self._token = token

    def rejected(self, code: str) -> None:
        self._span.set_attribute("actor.rejected", code)

    def crashed(self, exc: BaseException) -> None:
        self._span.record_exception(exc)
        self._span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

    def end(self) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        self._span.end()


class ActorTracer:
    """actors.activation.MessageTracer over OpenTelemetry: contexts are OTel Contexts."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def current(self) -> otel_context.Context | None:
        context = otel_context.get_current()
        return context if trace.get_current_span(context).get_span_context().is_valid \
            else None

    def handling(self, ref: ActorRef, message: object, parent: object) -> MessageSpan:
        assert isinstance(parent, otel_context.Context)
        name = type(message).__name__
        span = self._tracer.start_span(
            f"actor.{ref.kind}.{name}", context=parent, kind=trace.SpanKind.INTERNAL,
            attributes={"actor.kind": ref.kind, "actor.key": ref.key, "actor.message": name})
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return _MessageSpan(span, token)

    @contextlib.contextmanager
    def use(self, context: object | None) -> Iterator[None]:
        assert context is None or isinstance(context, otel_context.Context)
        token = otel_context.attach(context if context is not None else otel_context.Context())
        try:
            yield
        finally:
            otel_context.detach(token)

    def traceparent(self) -> str | None:
        span_context = trace.get_current_span().get_span_context()
        return _traceparent(span_context) if span_context.is_valid else None

    def from_traceparent(self, traceparent: str) -> otel_context.Context | None:
        context = _w3c.extract({"traceparent": traceparent})
        return context if trace.get_current_span(context).get_span_context().is_valid \
            else None
