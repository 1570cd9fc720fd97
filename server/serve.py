"""Run the app until SIGTERM/SIGINT, then drain and shut down gracefully.

Shutdown order: leave the cluster view and hand actors over to the other nodes; mark draining
(/ready answers 503) and keep serving for DRAIN_SECONDS so load
balancers move traffic away; then stop accepting connections, let in-flight requests finish
within SHUTDOWN_TIMEOUT, close live sockets, and run every cleanup context (pools closed,
embedded Postgres stopped). A second signal skips the rest of the drain period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.keys import LIFECYCLE

log = logging.getLogger("hubbub.serve")


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_timeout)
    try:
        await runner.setup()  # runs every startup step (pools, migrations, consumers)
    except BaseException:
        await runner.cleanup()  # undo the steps that did start (pools, embedded Postgres)
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("serving", extra={"host": settings.host, "port": settings.port,
                                   "adapters": app[LIFECYCLE].adapters})
        await stop.wait()
        stop.clear()
        app[LIFECYCLE].draining = True
        # Leave the cluster first: the actors hosted here move to the other nodes while the
        # sockets are still served, so the sockets' last messages reach the new owners.
        for leave in app[LIFECYCLE].leave_hooks:
            try:
                await leave()
            except Exception:
                log.exception("leaving the cluster failed")
        log.info("draining", extra={"drain_seconds": settings.drain_seconds})
        if settings.drain_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.drain_seconds)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("stopped")
