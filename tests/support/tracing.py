"""OpenTelemetry in tests: the process's one SDK provider recording into memory, and a
fixture that turns Hubbub's tracing on around a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

from server.tracing import InTraceOnly, Tracing, setup_tracing


def memory_tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """The test process's one SDK provider, recording into memory (OpenTelemetry takes one
    global provider per process, so every tracing test shares it)."""
    current = trace.get_tracer_provider()
    exporter = getattr(current, "hubbub_test_exporter", None)
    if isinstance(current, TracerProvider) and exporter is not None:
        return current, exporter
    provider = TracerProvider(sampler=InTraceOnly(ParentBased(ALWAYS_ON)))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.hubbub_test_exporter = exporter  # type: ignore[attr-defined]
    return provider, exporter


@pytest.fixture
def tracing() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    """Tracing on, recording into memory; off again (uninstrumented) after the test."""
    provider, exporter = memory_tracing()
    exporter.clear()
    on = setup_tracing(provider=provider)
    assert on is not None
    assert trace.get_tracer_provider() is provider, "another provider was installed first"
    yield on, exporter
    on.shutdown()
    exporter.clear()


def named(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]
