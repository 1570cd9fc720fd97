"""Run `hubbub serve` as a subprocess for end-to-end tests, and read what it logged."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import redis_keys
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
        # Its Redis keys are deleted when the test session ends (tests/support/redis_keys.py).
        redis_keys.remember(self.env.get("REDIS_URL"), env.get("REDIS_KEY_PREFIX"))
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HubbubProcess:
        """launch() then wait_ready(): a server ready to serve (existing callers)."""
        return self.launch().wait_ready()

    def launch(self) -> HubbubProcess:
        """Spawn `hubbub serve` and return at once. May be called again after the process
        exited (stop() or kill()): the same port, environment and DATA_DIR, and the log file
        grows (it is opened for appending)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"hubbub on {self.base_url} is still running")
        if not _bindable(self.port):
            # Taken meanwhile (an ephemeral client socket of a test may land on it): move.
            self._use_port(free_port())
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
        )
        log.close()
        return self

    def _use_port(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env["PORT"] = str(port)

    def wait_ready(self, timeout: float | None = None) -> HubbubProcess:
        """Block until /ready answers 200 (raises when the process exits first)."""
        wait_until(self.ready_now, timeout or self.ready_timeout,
                   f"hubbub on {self.base_url} to be ready")
        return self

    def ready_now(self) -> bool:
        """One look: does /ready answer 200? Raises RuntimeError once the process exited."""
        self.check_running()
        try:
            with urllib.request.urlopen(f"{self.base_url}/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def check_running(self) -> None:
        """Raise RuntimeError (with the log) when the process was launched and has exited."""
        assert self.process is not None, "launch() first"
        if self.process.poll() is not None:
            raise RuntimeError(
                f"hubbub exited with {self.process.returncode}:\n{self.log_path.read_text()}"
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def send_signal(self, sig: int) -> None:
        """Signal the process without waiting (for callers that wait asynchronously)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)

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

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL (no cleanup of any kind: a crashed machine), then reap; returns the exit
        code (-9), or the earlier one when it had exited already."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait(timeout)

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


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
