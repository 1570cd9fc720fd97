"""Starting up against services that may be wrong, unreachable or still starting.

A setting that cannot work (a malformed URL, a wrong password, a port in use, a DATA_DIR that
is not a writable directory) stops the server at once with one line naming the environment
variable (`hubbub serve` exits 2, see server.cli). A service that only cannot be reached yet
(connection refused or timed out, Postgres "starting up", Redis loading its data, a name that
does not resolve yet) is retried with backoff for up to SERVICE_WAIT_SECONDS, logging each
wait, before it stops the server the same way: containers and their databases often start
together.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

log = logging.getLogger("hubbub.startup")
T = TypeVar("T")

# How long startup waits for a service that cannot be reached yet (each service in turn).
SERVICE_WAIT_SECONDS = 30.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.25, 2.0
_TCP_TIMEOUT = 3.0


class StartupError(Exception):
    """The server cannot start because of the setting `variable`; `str()` is one line for
    people, starting with the variable's name."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def describe(exc: BaseException) -> str:
    """`Type: first line of the message` (driver messages can run over several lines)."""
    name = type(exc).__name__
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if first.startswith(f"{name}: "):  # some drivers put their class name in the message
        first = first[len(name) + 2:]
    return f"{name}: {first}" if first else name


def redact(url: str) -> str:
    """A URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "<unparseable URL>"


async def wait_for_service(variable: str, target: str, attempt: Callable[[], Awaitable[T]], *,
                           retriable: Callable[[BaseException], bool],
                           fatal: tuple[type[BaseException], ...] = (Exception,),
                           wait: float | None = None) -> T:
    """Run `attempt` until it succeeds. A `retriable` failure is retried with backoff until
    `wait` (SERVICE_WAIT_SECONDS) has passed; any other failure of a `fatal` type, and the last
    retriable one, raise StartupError naming `variable`. Other exceptions propagate."""
    deadline = time.monotonic() + (SERVICE_WAIT_SECONDS if wait is None else wait)
    delay = _BACKOFF_FIRST
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not retriable(exc):
                if isinstance(exc, fatal):
                    raise StartupError(variable, f"{target}: {describe(exc)}") from exc
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                waited = SERVICE_WAIT_SECONDS if wait is None else wait
                raise StartupError(variable, f"{target} cannot be reached: {describe(exc)} "
                                             f"(gave up after {waited:g} s)") from exc
            log.warning("waiting for %s", variable, extra={
                "variable": variable, "target": target, "error": describe(exc),
                "retry_in": round(min(delay, left), 2), "gives_up_in": round(left, 1)})
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, _BACKOFF_MAX)


def check_data_dir(path: str) -> None:
    """DATA_DIR must be (or become) a directory we can write to."""
    folder = Path(path)
    probe = folder / f".hubbub-write-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or describe(exc)
        raise StartupError("DATA_DIR", f"{path} is not a writable directory: {reason}") from exc


def check_listen(host: str, port: int) -> None:
    """Fail before starting anything when HOST:PORT cannot be listened on (another process
    holds the port, HOST is not an address of this machine). Binding for real later may still
    fail (a race): serve() maps that the same way (listen_error)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError("HOST", f"{host!r} does not resolve: {exc.strerror}") from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise listen_error(host, port, exc) from exc


def listen_error(host: str, port: int, exc: OSError) -> StartupError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return StartupError("PORT", f"{where} is already in use by another process")
    if exc.errno == errno.EACCES:
        return StartupError("PORT", f"not allowed to listen on {where} (ports below 1024 "
                                    "need privileges)")
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return StartupError("HOST", f"{host!r} is not an address of this machine")
    return StartupError("PORT", f"cannot listen on {where}: {exc.strerror or describe(exc)}")


async def wait_for_endpoint(variable: str, url: str) -> None:
    """An http(s) URL that must answer TCP (S3_ENDPOINT_URL): checked for form at once, waited
    for while it refuses."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise StartupError(variable, f"{redact(url)} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StartupError(variable, f"{redact(url)} is not an http:// or https:// URL")
    host = parts.hostname

    async def connect() -> None:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _TCP_TIMEOUT)
        writer.close()

    await wait_for_service(variable, redact(url), connect, retriable=_network_failure)


def check_kafka_servers(servers: str) -> None:
    """KAFKA_BOOTSTRAP_SERVERS: host:port[,host:port...]."""
    entries = [entry.strip() for entry in servers.split(",")]
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not entry or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise StartupError("KAFKA_BOOTSTRAP_SERVERS",
                               f"{servers!r} is not a list of host:port separated by commas")


def _network_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError | TimeoutError)


def data_dir_needed(database_url: str | None, jwt_secret: str | None,
                    s3_endpoint_url: str | None) -> bool:
    """DATA_DIR holds the embedded Postgres, the generated JWT secret and local media."""
    return database_url is None or jwt_secret is None or s3_endpoint_url is None

