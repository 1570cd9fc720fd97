"""Cross-origin requests (CORS) for the REST API, and the same origins for Socket.IO.

CORS_ALLOWED_ORIGINS holds exact origins (`https://app.example.com,http://localhost:5173`)
or `*`. Empty (the default): no CORS headers at all, so only pages of Hubbub's own origin
may read its responses, and every preflight is refused.

- A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin
  answers 204 with Access-Control-Allow-Origin, -Allow-Methods (the route's methods),
  -Allow-Headers (REQUEST_HEADERS), -Max-Age and `Vary: Origin`; from any other origin, 403
  problem `origin_not_allowed`. A preflight for a path no route serves gets the usual 404.
- Any other request from an allowed origin gets Access-Control-Allow-Origin and
  Access-Control-Expose-Headers (EXPOSED_HEADERS) on its response, problems included. A
  request from another origin is served as usual without them (CORS protects the browser's
  user from reading; it is no access control: tokens are). With origins configured every
  response says `Vary: Origin` (also to requests without one: a cache must not hand that
  answer to a page of an allowed origin).
- No credentials mode: Hubbub authenticates with bearer tokens, not cookies, so
  Access-Control-Allow-Credentials is never sent and `*` is answered literally.
- `/socket.io/` is left to python-socketio, configured with `socketio_origins` (below): the
  app runs this middleware through `http_only` (server/http/middleware.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.config import Settings
from server.http.caching import add_vary
from server.http.problems import Forbidden, problem_response

REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-None-Match",
                   "X-Request-ID")
EXPOSED_HEADERS = ("ETag", "RateLimit", "RateLimit-Policy", "RateLimit-Limit",
                   "RateLimit-Remaining", "Retry-After", "Location", "X-Request-ID",
                   "Idempotent-Replayed")
MAX_AGE = 600  # seconds a browser may cache a preflight's answer
ANY = "*"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: tuple[str, ...]  # () none, ("*",) any

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(settings.cors_origins())

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allow_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`, or None."""
        if self.origins == (ANY,):
            return ANY
        return origin if origin.lower() in self.origins else None


def cors_middleware(policy: CorsPolicy) -> Middleware:
    """The middleware applying `policy`; place it outside the error middleware, so that
    problem responses get the headers too."""

    @web.middleware
    async def cors(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = policy.allow_origin(origin) if origin is not None else None
        if (origin is not None and request.method == "OPTIONS"
                and "Access-Control-Request-Method" in request.headers):
            preflight = _preflight(request, allowed)
            if preflight is not None:
                return preflight
        response = await handler(request)
        if policy.enabled and not response.prepared:
            add_vary(response.headers, "Origin")
            if allowed is not None:
                response.headers["Access-Control-Allow-Origin"] = allowed
                response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response

    return cors


def _preflight(request: web.Request, allowed: str | None) -> web.StreamResponse | None:
    """The answer to a preflight, or None to let the router answer (no such path)."""
    if allowed is None:
        response = problem_response(
            Forbidden(f"Origin {request.headers['Origin']} may not call this API",
                      code="origin_not_allowed"), request.path)
        add_vary(response.headers, "Origin")
        return response
    methods = _route_methods(request)
    if not methods:
        return None
    response = web.Response(status=204, headers={
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": ", ".join(REQUEST_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE),
    })
    add_vary(response.headers, "Origin")
    return response


def _route_methods(request: web.Request) -> list[str]:
    """The methods the matched path serves: no REST route serves OPTIONS, so a preflight's
    match is a 405 that lists them. Empty when no route matches the path, or when a route
    serves OPTIONS itself (it answers then)."""
    error = request.match_info.http_exception
    if isinstance(error, web.HTTPMethodNotAllowed):
        return sorted(error.allowed_methods)
    return []


def socketio_origins(settings: Settings) -> str | Any:
    """`cors_allowed_origins` for python-socketio's AsyncServer: "*" for `*`; otherwise a
    check that accepts the listed origins and the server's own (same-origin pages, e.g.
    behind a proxy that keeps Host) and refuses every other Origin at the handshake."""
    origins = settings.cors_origins()
    if origins == (ANY,):
        return ANY
    return SameOriginOr(origins)


@dataclass(frozen=True, slots=True)
class SameOriginOr:
    """Engine.IO calls this with the Origin header and the request's WSGI-style environ."""

    origins: tuple[str, ...]

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        if not origin:
            return True  # not a browser: nothing to protect
        origin = origin.lower()
        return origin in self.origins or origin in _own_origins(environ)


def _own_origins(environ: Mapping[str, Any]) -> set[str]:
    """The server's own origin as this request reached it (what Engine.IO's default, same
    origin only, compares with), also as a proxy in front names it."""
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = str(environ.get("HTTP_HOST", ""))
    own = {f"{scheme}://{host}".lower()} if host else set()
    forwarded_proto = str(environ.get("HTTP_X_FORWARDED_PROTO", scheme)).split(",")[0].strip()
    forwarded_host = str(environ.get("HTTP_X_FORWARDED_HOST", host)).split(",")[0].strip()
    if forwarded_host:
        own.add(f"{forwarded_proto}://{forwarded_host}".lower())
    return own
