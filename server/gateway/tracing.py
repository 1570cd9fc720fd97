"""A span per Socket.IO client event, `socketio <event>`, when tracing is on (server/tracing.py).

Each event starts a trace of its own (a SERVER span with no parent: the socket's connection
is not a request), current while the event runs through the pipeline, so the actor it asks,
and that actor's Postgres and Redis calls and outbox rows, share its trace. The ack's outcome
is recorded on the span (`socketio.ok`, and the error code of a refused event).

Used by the namespace and the inbound fast path around their `dispatch` call:

    result = await traced_event(event, sid, dispatch(gw, sid, event, args, metrics))

With tracing off `traced_event` returns the coroutine it was given: no span, no extra frame.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from protocols.socket import CLIENT_EVENTS, INTERNAL
from server.tracing import active_tracer

T = TypeVar("T")
# Client-chosen event names are validated only later, in the pipeline: an unknown one is
# named this way so that span names stay a small set.
UNKNOWN_EVENT = "unknown"


def traced_event(event: Any, sid: Any, dispatching: Coroutine[Any, Any, T]) -> Awaitable[T]:
    """`dispatching` (a not yet started dispatch of client event `event` from socket `sid`),
    inside a span `socketio <event>` when tracing is on."""
    tracer = active_tracer()
    if tracer is None:
        return dispatching
    return _traced(tracer, event, sid, dispatching)


async def _traced(tracer: trace.Tracer, event: Any, sid: Any,
                  dispatching: Coroutine[Any, Any, T]) -> T:
    name = event if isinstance(event, str) and event in CLIENT_EVENTS else UNKNOWN_EVENT
    with tracer.start_as_current_span(
            f"socketio {name}", context=otel_context.Context(), kind=trace.SpanKind.SERVER,
            attributes={"socketio.event": name, "socketio.namespace": "/",
                        "socketio.sid": str(sid)}) as span:
        result = await dispatching
        if isinstance(result, dict) and "ok" in result:
            span.set_attribute("socketio.ok", bool(result["ok"]))
            error = result.get("error")
            if isinstance(error, dict) and "code" in error:
                span.set_attribute("socketio.error", str(error["code"]))
                if error["code"] == INTERNAL:
                    span.set_status(trace.StatusCode.ERROR, "internal error")
        return result
