"""server/logs.py: repeated warnings and errors are rate-limited with a count of what was
dropped, and python-socketio / python-engineio log through the JSON handler only."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import socketio

from server import logs
from server.logs import JsonFormatter, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Out = tuple[logging.Logger, list[logging.LogRecord], Clock]


@pytest.fixture
def out() -> Iterator[Out]:
    """A logger whose handler keeps what passes its RepeatFilter (limit 3 per 10 s)."""
    kept: list[logging.LogRecord] = []
    clock = Clock()
    handler = logging.Handler()
    handler.emit = kept.append  # type: ignore[method-assign]
    handler.addFilter(RepeatFilter(handler.handle, limit=3, interval=10, clock=clock))
    logger = logging.getLogger("test.repeats")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, kept, clock
    logger.removeHandler(handler)


def messages(kept: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in kept]


def test_the_first_n_pass_then_a_count_of_the_rest(out: Out) -> None:
    logger, kept, clock = out
    for i in range(1000):
        logger.error("Cannot publish to redis... retrying", extra={"attempt": i})
    assert len(kept) == 3
    clock.now = 10.0
    logger.info("something else")  # any record closes windows that are due
    summary = kept[3]
    assert summary.suppressed == 997 and summary.levelno == logging.ERROR  # type: ignore
    assert summary.repeat_of == "Cannot publish to redis... retrying"  # type: ignore
    assert summary.name == "test.repeats" and "997 more like this" in summary.getMessage()
    assert messages(kept)[4] == "something else"
    logger.error("Cannot publish to redis... retrying")  # a new window
    assert len(kept) == 6


def test_kinds_are_separate_and_arguments_do_not_make_a_new_kind(out: Out) -> None:
    logger, kept, _ = out
    for i in range(10):
        logger.warning("room %s: emit failed", f"room-{i}")
        logger.warning("another message")
        logger.error("room %s: emit failed", f"room-{i}")  # another level: another kind
    assert messages(kept).count("another message") == 3
    assert len([r for r in kept if r.msg == "room %s: emit failed"]) == 6


def test_info_and_below_pass_untouched(out: Out) -> None:
    logger, kept, _ = out
    for _ in range(50):
        logger.info("GET /health 200")
    assert len(kept) == 50


def test_flush_reports_and_kinds_are_bounded() -> None:
    kept: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = kept.append  # type: ignore[method-assign]
    repeats = RepeatFilter(handler.handle, limit=1, interval=60, max_kinds=2, clock=Clock())
    handler.addFilter(repeats)
    for template in ("a %s", "a %s", "b %s", "c %s", "c %s"):
        handler.handle(logging.LogRecord("x", logging.WARNING, "", 0, template, (1,), None))
    # "a" was closed early to make room for "c" (its drop reported); flush reports "c".
    assert [r.getMessage() for r in kept][:4] == [
        "a 1", "b 1", "1 more like this were not logged (at most 1 per 60s): a %s", "c 1"]
    repeats.flush()
    assert kept[-1].repeat_of == "c %s" and kept[-1].suppressed == 1  # type: ignore


def test_socketio_and_engineio_log_json_through_the_root_only() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.raiseExceptions)
    libraries = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level)
                 for name in logs.LIBRARY_LOGGERS}
    stream = io.StringIO()
    try:
        logs.configure_logging("INFO", "node-t")
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        # Built the way python-socketio's defaults do it (logger=False): no handler of its
        # own is added, since configure_logging set the level.
        sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
        assert all(not logging.getLogger(n).handlers for n in logs.LIBRARY_LOGGERS)
        sio.eio.logger.error("Invalid session x")
        sio.logger.warning("something in socketio")
        lines = stream.getvalue().splitlines()
        entries = [json.loads(line) for line in lines]
        assert [(e["logger"], e["msg"]) for e in entries] == [
            ("engineio.server", "Invalid session x"),
            ("socketio.server", "something in socketio")]
    finally:
        root.handlers[:], level, logging.raiseExceptions = saved
        root.setLevel(level)
        logging.captureWarnings(False)
        for name, (handlers, lib_level) in libraries.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).setLevel(lib_level)


def test_the_json_formatter_carries_the_count() -> None:
    record = logging.LogRecord("x", logging.ERROR, "", 0, "boom", (), None)
    record.suppressed = 5
    assert json.loads(JsonFormatter("n").format(record))["suppressed"] == 5
