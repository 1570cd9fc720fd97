"""Per-client rate limiting for every REST route (and the Socket.IO handshake).

Each request spends one token from the client's global bucket (RATE_LIMIT_PER_MINUTE, key
`ip:<ip>`) and, when its route has a limit of its own (`Endpoint.rate_limit`, overridden by
RATE_LIMIT_ROUTES), one from the route's bucket (`route:<name>:<ip>`). Exempt: routes named
`ops.*` (health, readiness, metrics: probes must never be refused), requests that match no
route (404/405), and Socket.IO long-polling requests after the handshake (the handshake
spends through `spend` in server/gateway/endpoint.py, as route `socket.io`, which
RATE_LIMIT_ROUTES may limit too). A refusal is a 429 problem with `Retry-After`. Every
response to a request that spent tokens, a 429 or any other problem included, carries
`RateLimit-Policy` and `RateLimit` (server.ratelimit.headers) and the older
`RateLimit-Limit` / `RateLimit-Remaining`: added as the response is prepared, so the
problems the error middleware renders further out get them too. When the bucket store
fails, requests are allowed (see FailOpenRateLimiter).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from server.config import Settings
from server.http.endpoint import current_endpoint
from server.http.middleware import route_name
from server.http.problems import RateLimited
from server.keys import LIFECYCLE, SETTINGS
from server.ratelimit.failopen import FailOpenRateLimiter
from server.ratelimit.headers import (
    GLOBAL_POLICY,
    Spent,
    legacy_fields,
    policy_field,
    ratelimit_field,
)
from server.ratelimit.ports import RateLimiter
from server.resources import optional_redis
from storage.memory.rate_limiter import MemoryRateLimiter
from storage.redis.rate_limiter import RedisRateLimiter

EXEMPT_PREFIX = "ops."


@dataclass(frozen=True, slots=True)
class RatePolicy:
    per_minute: int  # the global bucket, per client
    route_overrides: dict[str, int]  # RATE_LIMIT_ROUTES, by route name
    trust_proxy_headers: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> RatePolicy:
        return cls(per_minute=settings.rate_limit_per_minute,
                   route_overrides=settings.route_rate_limits(),
                   trust_proxy_headers=settings.trust_proxy_headers)

    def route_limit(self, request: web.Request, name: str) -> int | None:
        if name in self.route_overrides:
            return self.route_overrides[name]
        endpoint = current_endpoint(request)
        return endpoint.rate_limit if endpoint is not None else None

    def client_ip(self, request: web.Request) -> str:
        if self.trust_proxy_headers:
            forwarded = request.headers.get("X-Forwarded-For", "")
            first = forwarded.split(",", 1)[0].strip()
            if first:
                return first[:64]  # bounds the key length whatever a proxy sends
        return request.remote or "unknown"


RATE_POLICY = web.AppKey("rate_policy", RatePolicy)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What a request spent, for its response's headers."""

    policies: list[tuple[str, int]]  # (policy name, per minute) of the buckets that apply
    spent: list[Spent]


REQUEST_LIMITS = web.RequestKey("rate_limits", RequestLimits)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        return await handler(request)  # unmatched: the 404/405 costs nothing
    name = route_name(request)
    if not name.startswith(EXEMPT_PREFIX):
        await spend(request, name)
    return await handler(request)


async def spend(request: web.Request, name: str) -> None:
    """Spend the request's tokens: the client's global bucket and, when route `name` has a
    limit, its bucket; RateLimited when either refuses. What was spent goes on the request,
    for its response's headers."""
    policy = request.app[RATE_POLICY]
    limiter = request.app[RATE_LIMITER]
    ip = policy.client_ip(request)
    route_limit = policy.route_limit(request, name)
    limits = RequestLimits(policies=[(GLOBAL_POLICY, policy.per_minute)], spent=[])
    if route_limit is not None:
        limits.policies.append((name, route_limit))
    request[REQUEST_LIMITS] = limits
    limits.spent.append(Spent(GLOBAL_POLICY, await limiter.hit(f"ip:{ip}", policy.per_minute)))
    if limits.spent[0].decision.allowed and route_limit is not None:
        limits.spent.append(Spent(name, await limiter.hit(f"route:{name}:{ip}", route_limit)))
    refused = [s.decision for s in limits.spent if not s.decision.allowed]
    if refused:
        raise RateLimited(max(d.retry_after for d in refused))


async def rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the rate-limit fields of every response whose request spent
    tokens, whoever built the response (the handler, or the error middleware's problem)."""
    limits = request.get(REQUEST_LIMITS)
    if limits is None or not limits.spent:
        return
    response.headers["RateLimit-Policy"] = policy_field(limits.policies)
    response.headers["RateLimit"] = ratelimit_field(limits.spent)
    response.headers.update(legacy_fields(limits.spent))


def setup_ratelimit(app: web.Application, *,
                    clock: Callable[[], float] = time.monotonic) -> None:
    """Register the policy now and the limiter at startup: Redis when the app has a client
    (redis_ctx runs before this ctx), the in-process buckets otherwise. `clock` drives the
    in-process buckets and the fail-open cooldown; tests inject one."""
    app[RATE_POLICY] = RatePolicy.from_settings(app[SETTINGS])
    app.on_response_prepare.append(rate_limit_headers)

    async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
        client = optional_redis(app)
        inner: RateLimiter
        if client is not None:
            inner = RedisRateLimiter(client, app[SETTINGS].redis_key_prefix)
            app[LIFECYCLE].adapters["rate_limit"] = "redis"
        else:
            inner = MemoryRateLimiter(clock)
            app[LIFECYCLE].adapters["rate_limit"] = "memory"
        app[RATE_LIMITER] = FailOpenRateLimiter(inner, clock)
        yield

    app.cleanup_ctx.append(rate_limiter_ctx)
