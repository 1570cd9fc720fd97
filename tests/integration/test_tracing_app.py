"""Tracing through a running app (real Postgres, its own database; spans recorded in memory):
a REST request with an incoming `traceparent` is one trace from the aiohttp server span
through the RoomActor it asks, the Postgres statements, the outbox row, the relay's publish
and the consumer; its log lines carry the trace id. With tracing off: no span, no traceparent
in the outbox, no trace id in the logs. The Kafka bus carries the trace in a header, and Redis
calls are client spans of the trace they are made in."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from server.app import create_app
from server.config import load_settings
from server.events.wiring import EVENT_BUS
from server.logs import JsonFormatter
from server.tracing import Tracing
from storage.kafka.event_bus import KafkaEventBus
from storage.memory.dead_letters import MemoryDeadLetters
from tests.support.accounts import signup
from tests.support.databases import create_database, drop_database
from tests.support.polling import eventually
from tests.support.tracing import memory_tracing
from tests.unit.events_kit import FakeSleep, Recorder, user_event
from tests.unit.test_tracing import INCOMING, INCOMING_TRACE

pytestmark = pytest.mark.integration
DEADLINE = 15.0
INCOMING_SPAN = 0xB7AD6B7169203331


@pytest_asyncio.fixture
async def dsn(admin_pg_dsn: str) -> AsyncIterator[str]:
    name = await create_database(admin_pg_dsn, prefix="hubbub_tracing")
    yield name
    await drop_database(admin_pg_dsn, name)


class Lines(logging.Handler):
    """The JSON lines Hubbub would print."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def captured_logs() -> Iterator[Lines]:
    lines, root, ours = Lines(), logging.getLogger(), logging.getLogger("hubbub")
    level = ours.level
    ours.setLevel(logging.INFO)
    root.addHandler(lines)
    try:
        yield lines
    finally:
        root.removeHandler(lines)
        ours.setLevel(level)


def _app(dsn: str, chat: Recorder) -> web.Application:
    app = create_app(load_settings({"DATABASE_URL": dsn, "JWT_SECRET": "x" * 32}))

    async def chat_consumer(app: web.Application) -> AsyncIterator[None]:
        app[EVENT_BUS].subscribe("test.chat", ["hubbub.chat"], chat)  # no area consumes chat
        yield

    app.cleanup_ctx.append(chat_consumer)
    return app


async def _send_in_room(client: TestClient, headers: dict[str, str]) -> tuple[str, int]:
    """Alice and Bob, a group room, and a message in it sent with `headers`: (message id,
    status)."""
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with client.post("/v1/rooms", headers=alice.auth, json={
            "kind": "group", "member_ids": [bob.id], "name": "traced"}) as response:
        assert response.status == 201, await response.text()
        room_id = (await response.json())["id"]
    async with client.post(f"/v1/rooms/{room_id}/messages", headers={**alice.auth, **headers},
                           json={"text": "hello", "client_id": uuid.uuid4().hex}) as response:
        status = response.status
        body = await response.json()
    return body.get("id", ""), status


async def _traceparent_of(dsn: str, message_id: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT traceparent FROM outbox WHERE type = 'message.sent' AND envelope @> "
            "jsonb_build_array(jsonb_build_object('data', jsonb_build_object("
            "'message_id', $1::text)))", message_id)
    finally:
        await conn.close()


def _of_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


async def test_a_request_is_one_trace_from_server_span_to_consumer(
        dsn: str, tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    chat = Recorder()
    app = _app(dsn, chat)
    on.instrument_app(app)
    with captured_logs() as logs:
        async with TestServer(app) as server, TestClient(server) as client:
            message_id, status = await _send_in_room(client, {"traceparent": INCOMING})
            assert status == 201
            await asyncio.wait_for(chat.arrived.wait(), DEADLINE)

            async def consumed() -> bool:  # the consumer's span ends once the handler returned
                return any(s.kind == SpanKind.CONSUMER for s in _of_trace(exporter,
                                                                        INCOMING_TRACE))

            await eventually(consumed, DEADLINE, "the consumer span")
    spans = _of_trace(exporter, INCOMING_TRACE)
    by_id = {s.context.span_id: s for s in spans}

    def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
        return span.parent is not None and span.parent.span_id == parent.context.span_id

    server_span = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert server_span.name == "POST /v1/rooms/{id}/messages"
    assert server_span.parent is not None and server_span.parent.span_id == INCOMING_SPAN
    actor = next(s for s in spans if s.name.startswith("actor.RoomActor."))
    assert child_of(actor, server_span)
    # Postgres: the group commit's statement (messages + outbox row) serves the messages of
    # every room at once, so it belongs to no one request's trace; the outbox row carries
    # the trace on (below).
    inserts = [s for s in spans if s.kind == SpanKind.CLIENT and "INSERT INTO outbox"
               in str((s.attributes or {}).get("db.statement", ""))]
    assert not inserts, sorted({s.name for s in spans})
    # The outbox row keeps the context of the actor that wrote it (the batch's first message).
    traceparent = await _traceparent_of(dsn, message_id)
    assert traceparent is not None and traceparent.startswith(f"00-{INCOMING_TRACE:032x}-")
    writer = by_id[int(traceparent.split("-")[2], 16)]
    assert writer is actor
    publish = next(s for s in spans if s.name == "publish hubbub.chat")
    assert child_of(publish, actor) and publish.kind == SpanKind.PRODUCER
    consumer = next(s for s in spans if s.name == "test.chat message.sent")
    assert child_of(consumer, publish)
    # Every line logged while handling the request carries its trace.
    request_lines = [line for line in logs.lines if line.get("logger") == "hubbub.http"
                     and "/messages" in str(line.get("path"))]
    assert request_lines
    assert all(line["trace_id"] == f"{INCOMING_TRACE:032x}" for line in request_lines)
    assert all(line["span_id"] == f"{server_span.context.span_id:016x}"
               for line in request_lines)


async def test_with_tracing_off_nothing_is_recorded_or_written(dsn: str) -> None:
    _, exporter = memory_tracing()
    exporter.clear()
    chat = Recorder()
    app = _app(dsn, chat)
    with captured_logs() as logs:
        async with TestServer(app) as server, TestClient(server) as client:
            message_id, status = await _send_in_room(client, {"traceparent": INCOMING})
            assert status == 201
            await asyncio.wait_for(chat.arrived.wait(), DEADLINE)
    assert exporter.get_finished_spans() == ()
    assert await _traceparent_of(dsn, message_id) is None
    assert logs.lines and not any("trace_id" in line for line in logs.lines)


async def test_the_kafka_bus_carries_the_trace_in_a_header(
        kafka_bootstrap: str, tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    _, exporter = tracing
    seen = Recorder()
    bus = KafkaEventBus(kafka_bootstrap, dead_letters=MemoryDeadLetters(), sleep=FakeSleep(),
                        client_id=f"test-{uuid.uuid4().hex[:6]}",
                        consumer_options={"session_timeout_ms": 1000,
                                          "heartbeat_interval_ms": 250})
    group = f"test-{uuid.uuid4().hex[:10]}"
    bus.subscribe(group, ["hubbub.users"], seen)
    await bus.start()
    try:
        event, plain = user_event(), user_event()
        await bus.publish([event, plain], [INCOMING, None])

        async def both() -> bool:
            return {event.id, plain.id} <= set(seen.ids())

        await eventually(both, DEADLINE, "both events")

        async def consumed() -> bool:
            return any(s.name == f"{group} follow.created" for s in
                       exporter.get_finished_spans())

        await eventually(consumed, DEADLINE, "the consumer span")
    finally:
        await bus.stop()
    spans = exporter.get_finished_spans()
    consumer = [s for s in spans if s.name == f"{group} follow.created"]
    assert len(consumer) == 1  # the event without a traceparent made none
    assert consumer[0].context.trace_id == INCOMING_TRACE
    send = next(s for s in spans if s.kind == SpanKind.PRODUCER
                and s.context.trace_id == INCOMING_TRACE)  # aiokafka's, in the event's trace
    assert send.parent is not None and send.parent.span_id == INCOMING_SPAN
    assert consumer[0].parent is not None and consumer[0].parent.span_id == \
        send.context.span_id


async def test_redis_calls_are_client_spans_only_inside_a_trace(
        redis_url: str, tracing: tuple[Tracing, InMemorySpanExporter]) -> None:
    on, exporter = tracing
    key = f"hubbub-test:{uuid.uuid4().hex[:10]}:traced"
    client = redis.Redis.from_url(redis_url)
    try:
        await client.get(key)  # background work: no trace of its own
        with on.tracer.start_as_current_span("request") as request:
            await client.set(key, "1", ex=10)
            async with client.pipeline() as pipe:
                pipe.get(key)
                pipe.delete(key)
                await pipe.execute()
    finally:
        await client.aclose()
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert [s.name for s in calls] == ["SET", "GET DEL"]
    assert all(s.parent is not None and s.parent.span_id == request.get_span_context().span_id
               for s in calls)
