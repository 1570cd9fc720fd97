"""Liveness, readiness and build info. Not rate limited (route names start with `ops.`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from protocols.ops import Health, Info, Readiness
from server import __version__
from server.http.endpoint import Endpoints, encode_result
from server.keys import LIFECYCLE

api = Endpoints("operations")
_READY_TIMEOUT = 2.0


@api.get("/health", name="ops.health", summary="The process is alive", auth=False,
         response=Health)
async def health(request: web.Request) -> Health:
    return Health(status="ok")


@api.get("/ready", name="ops.ready", auth=False, response=Readiness, errors=(503,),
         summary="Dependencies are reachable; 503 while draining or when one is down "
         "(status `degraded`, still 200: an advisory part such as a Kafka consumer "
         "is still joining)")
async def ready(request: web.Request) -> web.StreamResponse:
    lifecycle = request.app[LIFECYCLE]
    checks = await _run(lifecycle.readiness_checks)
    advisory = await _run(lifecycle.advisory_checks)
    ok = not lifecycle.draining and all(v == "ok" for v in checks.values())
    status = "ready" if ok else ("draining" if lifecycle.draining else "unavailable")
    if ok and any(v != "ok" for v in advisory.values()):
        status = "degraded"  # serving; the advisory checks say what is still coming up
    checks.update(advisory)
    return encode_result(Readiness(status=status, checks=checks), 200 if ok else 503)


async def _run(probes: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            await asyncio.wait_for(probe(), _READY_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # any failure of a probe means "not ready"; say which
            checks[name] = f"failed: {type(exc).__name__}"
    return checks


@api.get("/info", name="ops.info", auth=False, response=Info,
         summary="Version, node id, uptime, adapters and the cluster view")
async def info(request: web.Request) -> Info:
    lifecycle = request.app[LIFECYCLE]
    return Info(
        name="hubbub",
        version=__version__,
        node_id=lifecycle.node_id,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lifecycle.started_at)),
        uptime_seconds=round(lifecycle.uptime(), 3),
        adapters=dict(lifecycle.adapters),
        cluster=lifecycle.cluster_info() if lifecycle.cluster_info is not None else None,
    )
