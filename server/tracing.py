"""OpenTelemetry tracing: off unless the standard `OTEL_*` variables ask for it.

Off (the default: no exporter configured, or OTEL_SDK_DISABLED=true) nothing is installed:
no SDK provider, no instrumentation, no actor tracer; the OpenTelemetry API our code calls
(storage, logs) answers with its no-op span, whose context is never valid, so no trace
context is carried or written anywhere.

On (`OTEL_TRACES_EXPORTER=otlp` or `console`, or an `OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `setup_tracing` installs once per process:

- an SDK TracerProvider (resource: `service.name` from OTEL_SERVICE_NAME, default "hubbub",
  `service.instance.id` the node id, plus OTEL_RESOURCE_ATTRIBUTES), the configured sampler
  (OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, default parentbased_always_on) and a batch
  span processor per exporter (OTLP over HTTP/protobuf, configured by the OTLP exporter's own
  variables; or one JSON line per span on stderr);
- the instrumentations: aiohttp server (a SERVER span per request, honouring an incoming W3C
  `traceparent`), asyncpg, redis, aiokafka and aiobotocore (client spans);
- `instrument_app(app)` then gives the app's actor system a tracer (a span per actor message,
  across nodes: server/actor_tracing.py) and flushes and shuts everything down at app cleanup.

Spans of a client, producer or consumer kind that would start a trace of their own (Redis
heartbeats, the relay's polling queries, a Kafka poll) are dropped: those are background
work, and a trace follows a request (or a Socket.IO event, server/gateway/tracing.py).

The provider is process-wide, as OpenTelemetry's API is (`_active` below): instrumentations
patch library classes for the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from server.actor_tracing import ActorTracer
from server.startup import StartupError

if TYPE_CHECKING:
    from opentelemetry.util.types import Attributes

    from server.config import Settings

log = logging.getLogger("hubbub.tracing")
SERVICE_NAME = "hubbub"
EXPORTERS = ("otlp", "console")
# Requests that are not worth a trace each (liveness probes, scrapes) or last as long as a
# socket (Socket.IO's long polls and websockets: its events are traced one by one instead).
# OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS (or OTEL_PYTHON_EXCLUDED_URLS) replaces it.
DEFAULT_EXCLUDED_URLS = "^/socket.io/,^/health$,^/ready$,^/info$,^/metrics$"
# Seconds the app's cleanup waits for the last spans to be exported (a collector that does not
# answer would hold the exporter for its whole OTEL_EXPORTER_OTLP_TIMEOUT, and retries).
FLUSH_SECONDS = 5.0
_active: Tracing | None = None  # what setup_tracing installed, until shutdown


def active_tracer() -> trace.Tracer | None:
    """Hubbub's own tracer while tracing is on; None when off (callers skip all work)."""
    return None if _active is None else _active.tracer


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def exporters_from_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the environment asks for; () means tracing is off. Raises
    StartupError on a value that cannot work."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return ()
    raw = (environ.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if not raw:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
            environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ("otlp",) if endpoint else ()
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    if names == ("none",):
        return ()
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise StartupError("OTEL_TRACES_EXPORTER", f"unknown exporter {unknown[0]!r}; "
                           f"known: {', '.join(EXPORTERS)} or none")
    if "otlp" in names:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = (environ.get(variable) or "").strip()
            if protocol and protocol != "http/protobuf":
                raise StartupError(variable, f"{protocol!r} is not supported; Hubbub exports "
                                   "OTLP over http/protobuf")
            if protocol:
                break
    return names


def sampler_from_env(environ: Mapping[str, str]) -> Sampler:
    """OTEL_TRACES_SAMPLER (default parentbased_always_on) and OTEL_TRACES_SAMPLER_ARG,
    wrapped so that background client spans start no trace (InTraceOnly)."""
    name = (environ.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    arg = (environ.get("OTEL_TRACES_SAMPLER_ARG") or "").strip()
    ratio = 1.0
    if name.endswith("traceidratio") and arg:
        try:
            ratio = float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise StartupError("OTEL_TRACES_SAMPLER_ARG",
                               f"{arg!r} is not a ratio between 0 and 1")
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        raise StartupError("OTEL_TRACES_SAMPLER", f"unknown sampler {name!r}; known: "
                           f"{', '.join(samplers)}")
    return InTraceOnly(samplers[name]())


class InTraceOnly(Sampler):
    """Drops CLIENT, PRODUCER and CONSUMER spans that have no parent (they would be roots of
    traces about background work: heartbeats, polls); defers to `inner` for the rest."""

    _CHILD_ONLY = (trace.SpanKind.CLIENT, trace.SpanKind.PRODUCER, trace.SpanKind.CONSUMER)

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(self, parent_context: otel_context.Context | None, trace_id: int,
                      name: str, kind: trace.SpanKind | None = None,
                      attributes: Attributes = None, links: Sequence[trace.Link] | None = None,
                      trace_state: trace.TraceState | None = None) -> SamplingResult:
        if kind in self._CHILD_ONLY and \
                not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes,
                                        links, trace_state)

    def get_description(self) -> str:
        return f"InTraceOnly{{{self.inner.get_description()}}}"


def _resource(node_id: str | None, environ: Mapping[str, str]) -> Resource:
    detected = Resource.create({})  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    attributes: dict[str, str] = {}
    named = environ.get("OTEL_SERVICE_NAME") or str(detected.attributes.get("service.name"))
    if named.startswith("unknown_service"):
        attributes["service.name"] = SERVICE_NAME
    elif environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = environ["OTEL_SERVICE_NAME"]
    if node_id and "service.instance.id" not in detected.attributes:
        attributes["service.instance.id"] = node_id
    return detected.merge(Resource(attributes))


def _span_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def provider_from_env(environ: Mapping[str, str] = os.environ, *,
                      node_id: str | None = None) -> TracerProvider | None:
    """The SDK provider (with its exporters) the environment asks for; None when off."""
    exporters = exporters_from_env(environ)
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource(node_id, environ),
                              sampler=sampler_from_env(environ))
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(
                ConsoleSpanExporter(out=sys.stderr, formatter=_span_line)))
    return provider


def _instrumentors() -> list[Any]:
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.botocore import AiobotocoreInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    return [AioHttpServerInstrumentor(), AsyncPGInstrumentor(), RedisInstrumentor(),
            AIOKafkaInstrumentor(), AiobotocoreInstrumentor()]


class Tracing:
    """Tracing as installed: the provider, Hubbub's tracer and the instrumentations."""

    def __init__(self, provider: TracerProvider, *, owns_provider: bool = True) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("hubbub")
        self._owns_provider = owns_provider
        self._instrumented: list[Any] = []
        self._stopped = False

    def _start(self) -> None:
        global _active
        if trace.get_tracer_provider() is not self.provider:
            # Once per process (OpenTelemetry refuses a second global provider; tests pass
            # the same one again). Our storage and relay spans go through the global one.
            trace.set_tracer_provider(self.provider)
        if "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS" not in os.environ and \
                "OTEL_PYTHON_EXCLUDED_URLS" not in os.environ:
            # Read by the aiohttp instrumentation when it is instrumented, just below.
            os.environ["OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS"] = DEFAULT_EXCLUDED_URLS
        for instrumentor in _instrumentors():
            if not instrumentor.is_instrumented_by_opentelemetry:
                with warnings.catch_warnings():
                    # aiohttp warns that the instrumentation subclasses web.Application (how
                    # it adds its middleware to every app built from then on); it works.
                    warnings.filterwarnings("ignore", "Inheritance class",
                                            DeprecationWarning)
                    instrumentor.instrument(tracer_provider=self.provider)
                self._instrumented.append(instrumentor)
        _active = self

    def instrument_app(self, app: web.Application) -> None:
        """Trace `app`'s actor messages and shut tracing down when the app is cleaned up.
        (The aiohttp server spans come from the middleware the instrumentation puts into every
        web.Application built after setup_tracing.)"""
        from server.actors_wiring import ACTOR_SYSTEM

        system = app.get(ACTOR_SYSTEM)
        if system is not None:
            system.tracer = ActorTracer(self.tracer)
        app.on_cleanup.append(self._on_cleanup)

    async def _on_cleanup(self, _app: web.Application) -> None:
        """Uninstrument, then export what is buffered, waiting FLUSH_SECONDS at most (the
        export goes on in a daemon thread, which does not hold the process's exit)."""
        self._uninstrument()
        loop = asyncio.get_running_loop()
        flushed = loop.create_future()

        def flush() -> None:
            try:
                self._stop_provider()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(
                        lambda: flushed.done() or flushed.set_result(None))

        threading.Thread(target=flush, name="tracing-flush", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(flushed), FLUSH_SECONDS)
        except TimeoutError:
            log.warning("traces not all exported at shutdown: the collector did not take "
                        "them within %g s", FLUSH_SECONDS)

    def shutdown(self) -> None:
        """Uninstrument, export what is buffered and stop the provider if we made it (or
        only flush it: tests share theirs). Idempotent."""
        self._uninstrument()
        self._stop_provider()

    def _uninstrument(self) -> None:
        global _active
        if _active is self:
            _active = None
        for instrumentor in self._instrumented:
            with contextlib.suppress(Exception):
                instrumentor.uninstrument()
        self._instrumented.clear()

    def _stop_provider(self) -> None:
        if self._stopped:
            return
        self._stopped = self._owns_provider  # a shared provider may be flushed again
        try:
            if self._owns_provider:
                self.provider.shutdown()  # exports what the batch processors hold
            else:
                self.provider.force_flush(timeout_millis=int(FLUSH_SECONDS * 1000))
        except Exception:  # an exporter that cannot reach its collector must not stop us
            log.warning("exporting the last traces failed", exc_info=True)


def setup_tracing(environ: Mapping[str, str] = os.environ, *, node_id: str | None = None,
                  provider: TracerProvider | None = None) -> Tracing | None:
    """Install tracing as the environment asks (see the module docstring); None when it is
    off. `provider`: use this one instead of the environment's (tests: an in-memory
    exporter); it is not shut down by Tracing.shutdown."""
    if _active is not None:
        return _active
    owns = provider is None
    if provider is None:
        provider = provider_from_env(environ, node_id=node_id)
        if provider is None:
            return None
    tracing = Tracing(provider, owns_provider=owns)
    tracing._start()
    log.info("tracing on", extra={
        "service": provider.resource.attributes.get("service.name"),
        "sampler": provider.sampler.get_description(),
        "exporters": list(exporters_from_env(environ)) if owns else ["in-process"]})
    return tracing


def traced_app(factory: Callable[[Settings], web.Application],
               settings: Settings) -> web.Application:
    """`factory(settings)`, traced when the OTEL_* variables say so (then set up before the
    app is built, so its aiohttp server is instrumented, and shut down at its cleanup)."""
    tracing = setup_tracing(node_id=settings.effective_node_id)
    try:
        app = factory(settings)
    except BaseException:
        if tracing is not None:
            tracing.shutdown()
        raise
    if tracing is not None:
        tracing.instrument_app(app)
    return app
