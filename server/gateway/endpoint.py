"""The `/socket.io/` route: Engine.IO's request handler behind one thin handler of ours.

The app's middlewares pass Socket.IO's requests by (server/http/middleware.py `http_only`):
a websocket's request handler runs for as long as the socket is open, and each middleware's
suspended frame would stay with it. This handler does what those requests need of them, in
one frame: the handshake (a request without an Engine.IO `sid`) spends from the client's rate
limit buckets like any REST request (route `socket.io`; a refusal is the usual 429 problem
with `Retry-After`), and every request is counted in `hubbub_http_requests_total` under
route `socket.io` and by transport, but not timed (a long poll lasts up to 25 s, a websocket
as long as it is open) and not held in flight for shutdown (the gateway closes its sockets
itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.http.middleware import SOCKETIO_PATH
from server.http.problems import ProblemError, problem_response
from server.metrics import SOCKET_IO_ROUTE, HttpMetrics

Spend = Callable[[web.Request, str], Awaitable[None]]  # server.ratelimit.wiring.spend


def socketio_endpoint(handle: web.Handler, metrics: HttpMetrics, spend: Spend) -> web.Handler:
    """`handle` (Engine.IO's aiohttp handler) with the handshake's rate limit and the
    request counts."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        metrics.socketio_request(request.query.get("transport"))
        status = 500
        try:
            if "sid" not in request.query:
                await spend(request, SOCKET_IO_ROUTE)
            response = await handle(request)
            status = response.status
            return response
        except ProblemError as error:
            response = problem_response(error, request.path)
            status = response.status
            return response
        finally:
            metrics.requests.labels(request.method, SOCKET_IO_ROUTE, str(status)).inc()

    return endpoint


def attach(app: web.Application, handle: web.Handler, metrics: HttpMetrics,
           spend: Spend) -> None:
    """Route Socket.IO's GET, POST and OPTIONS (as python-engineio's own `attach` does)."""
    endpoint = socketio_endpoint(handle, metrics, spend)
    for method in ("GET", "POST", "OPTIONS"):
        app.router.add_route(method, SOCKETIO_PATH, endpoint)
