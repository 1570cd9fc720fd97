"""Middlewares every request passes: request id, access log, and errors as problem details;
`http_only`, which keeps Socket.IO's requests out of them."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.faults import RETRY_AFTER_SECONDS, ServiceUnavailable, unavailable_cause
from server.http.endpoint import PRINCIPAL, current_endpoint
from server.http.problems import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    problem_response,
)
from server.logs import request_id_var

log = logging.getLogger("hubbub.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
# Socket.IO's endpoint (server/gateway/endpoint.py does for its requests what they need of
# the middlewares: the handshake's rate limit and the request counts).
SOCKETIO_PATH = "/socket.io/"


def http_only(middleware: Middleware) -> Middleware:
    """`middleware` for every request but Socket.IO's. Not a coroutine function: a Socket.IO
    request gets the next handler's coroutine back and no frame of ours is left suspended,
    whereas each `async def` middleware stays on the stack for as long as a websocket is open
    (about 0.4 KiB per middleware per socket)."""

    def skip_socketio(request: web.Request, handler: web.Handler) -> Awaitable[
            web.StreamResponse]:
        if request.path == SOCKETIO_PATH:  # its route; /socket.io/else is a 404 problem
            return handler(request)
        return middleware(request, handler)

    skip_socketio.__middleware_version__ = 1  # type: ignore[attr-defined]  # new style
    functools.update_wrapper(skip_socketio, middleware)
    return skip_socketio


def route_name(request: web.Request) -> str:
    """A low-cardinality label for the request: the route name, or 'unmatched'."""
    endpoint = current_endpoint(request)
    if endpoint is not None:
        return endpoint.name
    resource = request.match_info.route.resource
    if resource is not None and resource.name:
        return resource.name
    return "unmatched" if request.match_info.http_exception else "unnamed"


@web.middleware
async def request_context(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Assign a request id (or keep a sane incoming X-Request-ID) and log the request once."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        principal = request.get(PRINCIPAL)
        log.info(
            "%s %s %s", request.method, request.path, status,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route_name(request),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "remote": request.remote,
                "user_id": principal.user_id if principal else None,
            },
        )
        request_id_var.reset(token)


@web.middleware
async def problem_details(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Render every failure as RFC 9457. Bad input never becomes a 500."""
    try:
        return await handler(request)
    except ProblemError as error:
        response = problem_response(error, request.path)
        if error.status == 503 and "Retry-After" not in response.headers:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return problem_response(PayloadTooLarge(exc.text or None), request.path)
    except web.HTTPNotFound:
        return problem_response(NotFound(f"No route for {request.path}"), request.path)
    except web.HTTPMethodNotAllowed as exc:
        error = MethodNotAllowed(f"{request.method} is not allowed here")
        response = problem_response(error, request.path)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if 400 <= exc.status < 500:
            return problem_response(BadRequest(exc.reason), request.path)
        raise
    except Exception as exc:
        cause = unavailable_cause(exc)
        if cause is not None:  # Postgres (or Redis) down or starting: not a bug, retry later
            log.warning("service unavailable in %s %s", request.method, request.path,
                        extra={"error": f"{type(cause).__name__}: {cause}"})
            return problem_response(ServiceUnavailable(), request.path)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(ProblemError("An unexpected error occurred"), request.path)


# Response fields that hold a credential: a response carrying one must never be cached.
_TOKEN_FIELDS = frozenset({"access_token", "refresh_token"})


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`, so it sees every response of the app (problems, Socket.IO
    polling, media) just before its headers go out: never sniffed into another type, no
    `Server` header naming aiohttp and Python with their versions, and `Cache-Control:
    no-store` on the responses of endpoints that hand out tokens."""
    response.headers.popall("Server", None)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    endpoint = current_endpoint(request)
    if endpoint is not None and _carries_tokens(endpoint.response):
        response.headers["Cache-Control"] = "no-store"


@functools.cache
def _carries_tokens(shape: object) -> bool:
    fields = getattr(shape, "__struct_fields__", ())
    return not _TOKEN_FIELDS.isdisjoint(fields)
