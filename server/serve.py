"""Run the app until SIGTERM/SIGINT/SIGHUP, then drain and shut down gracefully.

Startup: settings that cannot work are refused before anything starts (DATA_DIR not a
writable directory, HOST:PORT not available, a malformed S3_ENDPOINT_URL), and every failure
while starting becomes a StartupError naming its variable (server.startup; the CLI prints it
as one line and exits 2). A signal during startup abandons it and undoes what had started.

Shutdown order: leave the cluster view and hand actors over to the other nodes; mark draining
(/ready answers 503, responses close their keep-alive connections) and keep serving for
DRAIN_SECONDS so load balancers move traffic away; then stop accepting connections and wait,
within SHUTDOWN_TIMEOUT, for the requests in flight to finish: an upload still streaming its
body keeps streaming (aiohttp's own shutdown stops reading request bodies at once, so it runs
only after this wait). Then close live sockets and run every cleanup context (pools closed,
embedded Postgres stopped). A second signal skips the rest of the drain and of the wait.
SIGHUP (the terminal closed) counts as SIGTERM: the default action would kill the process
without stopping the embedded Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from server import garbage_collector
from server.app import create_app
from server.config import Settings
from server.keys import LIFECYCLE
from server.signals import Stop, run_until_stopped, until_signal
from server.startup import (
    StartupError,
    check_data_dir,
    check_kafka_servers,
    check_listen,
    data_dir_needed,
    describe,
    listen_error,
    redact,
)
from server.tracing import traced_app
from server.worker import apply_consumer_role

log = logging.getLogger("hubbub.serve")
FINAL_WAIT = 5.0  # seconds for what is still running once the requests in flight are done


def preflight(settings: Settings) -> None:
    """The checks that need nothing started: fail in a second, not after the database."""
    if data_dir_needed(settings.database_url, settings.jwt_secret, settings.s3_endpoint_url):
        check_data_dir(settings.data_dir)
    if settings.kafka_bootstrap_servers:
        check_kafka_servers(settings.kafka_bootstrap_servers)
    check_listen(settings.host, settings.port)


async def serve(settings: Settings) -> None:
    await run_until_stopped(settings, checks=lambda: preflight(settings), run=_run)


async def _run(settings: Settings, stop: Stop) -> None:
    app = traced_app(create_app, settings)  # OTEL_* variables: off unless they ask for it
    apply_consumer_role(app)  # RUN_CONSUMERS=false: `hubbub worker` processes consume
    lifecycle = app[LIFECYCLE]
    # aiohttp's own wait for handlers (after our drain already waited SHUTDOWN_TIMEOUT for the
    # requests in flight) only has the sockets closed by on_shutdown left to see out.
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=min(settings.shutdown_timeout, FINAL_WAIT))
    try:
        try:
            # Every startup step (pools, migrations, consumers); a signal abandons it.
            await until_signal(stop, runner.setup())
        except StartupError:
            raise
        except Exception as exc:
            explained = _explain(exc, settings)
            if explained is exc:
                raise
            raise explained from exc
        if stop.count:
            log.info("stopped while starting")
            return
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(settings.host, settings.port, exc) from exc
        garbage_collector.freeze_startup()
        log.info("serving", extra={"host": settings.host, "port": settings.port,
                                   "adapters": lifecycle.adapters})
        await stop.wait()
        await _drain(runner, settings, stop)
    finally:
        await runner.cleanup()  # also undoes the startup steps that did start
        log.info("stopped")


async def _drain(runner: web.AppRunner, settings: Settings, stop: Stop) -> None:
    lifecycle = runner.app[LIFECYCLE]
    lifecycle.draining = True
    # Leave the cluster first: the actors hosted here move to the other nodes while the
    # sockets are still served, so the sockets' last messages reach the new owners.
    for leave in lifecycle.leave_hooks:
        try:
            await leave()
        except Exception:
            log.exception("leaving the cluster failed")
    log.info("draining", extra={"drain_seconds": settings.drain_seconds})
    if settings.drain_seconds > 0:
        await stop.until(asyncio.sleep(settings.drain_seconds), settings.drain_seconds)
    # Stop accepting connections; the ones open keep being served (and read) until their
    # requests are done.
    for site in list(runner.sites):
        await site.stop()
    started = time.monotonic()
    if lifecycle.requests_in_flight:
        log.info("waiting for requests in flight", extra={
            "requests": lifecycle.requests_in_flight,
            "shutdown_timeout": settings.shutdown_timeout})
        finished = await stop.until(lifecycle.wait_for_requests(settings.shutdown_timeout),
                                    settings.shutdown_timeout)
        left = lifecycle.requests_in_flight
        if left:
            log.warning("requests still in flight at shutdown; cancelling them", extra={
                "requests": left, "waited_seconds": round(time.monotonic() - started, 3),
                "hurried": not finished})


def _explain(exc: BaseException, settings: Settings) -> BaseException:
    """A StartupError naming the variable behind a failure in a startup step we do not own
    (media, auth), or `exc` itself when we cannot tell."""
    frames = _frames(exc)
    if settings.s3_endpoint_url and any("storage/s3/" in f or f.endswith("media_ctx")
                                        for f in frames):
        return StartupError("S3_ENDPOINT_URL",
                            f"{redact(settings.s3_endpoint_url)}: {describe(exc)}")
    if isinstance(exc, OSError) and exc.filename and _under(str(exc.filename),
                                                             settings.data_dir):
        return StartupError("DATA_DIR", f"{settings.data_dir}: {describe(exc)}")
    return exc


def _frames(exc: BaseException) -> list[str]:
    """'file:function' of every frame the exception (and its causes) went through."""
    names: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(names) < 500:
        tb = current.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            names.append(f"{code.co_filename}:{code.co_name}")
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return names


def _under(path: str, folder: str) -> bool:
    from pathlib import Path

    with contextlib.suppress(OSError, ValueError):
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    return False
