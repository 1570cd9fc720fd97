"""The CPU a benchmark's server caused in Postgres: `PgMeter` adds up the CPU of the backends
of one database (the bench's own) over a `with` block, for `make bench-chat`.

Postgres runs on this machine: each backend's utime + stime is read from /proc/<pid>/stat;
the backends' pids are polled from pg_stat_activity every PG_POLL_SECONDS, so that backends
opened inside the block count too.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import asyncpg

PG_POLL_SECONDS = 0.5
THREAD_DEADLINE = 120.0  # for the meter's first reading, and for its thread to end
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float | None:
    """utime + stime of a process in seconds, from /proc/<pid>/stat; None once it is gone (or
    not visible: a Postgres in another pid namespace)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields 14 and 15 of the file; counted after the command name, which may hold spaces.
    after_name = stat.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK


class PgMeter:
    """CPU used by the Postgres backends of one database during a `with` block.

    A thread polls `pg_stat_activity` for the database's backends every PG_POLL_SECONDS over
    a connection of its own (left out of the count), and reads each backend's utime + stime
    from /proc (Postgres runs on this machine). A backend there at the start counts from its
    reading then; one that appears later was opened inside the block, so all its CPU counts
    (its fork and authentication are part of what the server caused). A backend that exits
    between two polls loses its CPU since the last poll: an under-count of at most one poll
    interval per such backend (the server's pool keeps its connections, so it is rare).
    An empty DSN measures nothing: `cpu_seconds` is then None, as when no backend was
    readable or the meter failed (`error`)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.first: dict[int, float] = {}  # pid -> CPU seconds at the start (0.0: opened later)
        self.last: dict[int, float] = {}  # pid -> the latest reading
        self.error: str | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PgMeter:
        if self.dsn:
            self._thread = threading.Thread(target=self._run, name="pg-meter", daemon=True)
            self._thread.start()
            self._started.wait(THREAD_DEADLINE)  # the first reading is the baseline
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(THREAD_DEADLINE)

    @property
    def cpu_seconds(self) -> float | None:
        if not self.last:
            return None
        return sum(max(0.0, cpu - self.first[pid]) for pid, cpu in self.last.items())

    def _run(self) -> None:
        try:
            asyncio.run(self._poll_until_stopped())
        except Exception as exc:  # a broken meter reports n/a; it must not end the benchmark
            self.error = repr(exc)
            self.last.clear()
        finally:
            self._started.set()

    async def _poll_until_stopped(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            await self._poll(conn, baseline=True)
            self._started.set()
            while not self._stop.is_set():
                await asyncio.to_thread(self._stop.wait, PG_POLL_SECONDS)
                await self._poll(conn)  # once more after the stop: the closing reading
        finally:
            await conn.close()

    async def _poll(self, conn: asyncpg.Connection, baseline: bool = False) -> None:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        for row in rows:
            cpu = proc_cpu(row["pid"])
            if cpu is not None:
                self.first.setdefault(row["pid"], cpu if baseline else 0.0)
                self.last[row["pid"]] = cpu
