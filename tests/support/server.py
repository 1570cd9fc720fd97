"""Run `hubbub serve` as a subprocess for end-to-end tests, and read what it logged."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.polling import wait_until
from tests.support.services import free_port


class HubbubProcess:
    """One server process on a free 127.0.0.1 port, logging JSON lines to a file."""

    def __init__(self, env: dict[str, str], *, ready_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="hubbub-e2e-"))
        # Removed when the test session's interpreter exits: a test may restart a server on
        # the same DATA_DIR after stop(), so stop() must keep it.
        atexit.register(shutil.rmtree, self.workdir, ignore_errors=True)
        self.log_path = self.workdir / "server.log"
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATA_DIR": str(self.workdir / "var"),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HubbubProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )
        log.close()
        wait_until(self._ready, self.ready_timeout, f"hubbub on {self.base_url} to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"hubbub exited with {self.process.returncode}:\n{self.log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(f"{self.base_url}/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON line the server has logged so far (other lines are skipped)."""
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return entries
