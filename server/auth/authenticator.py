"""The bearer-token check of every authenticated REST request and Socket.IO connect: the
access token itself (TokenCodec: signature, claims, lifetime, expiry) and then whether its
user signed out everywhere since it was issued (TokenWatermarks).

The second part reads the cache, so it is asynchronous; the typed-endpoint layer
(server/http/endpoint.py) calls `app[AUTHENTICATOR](token)` synchronously. So
`check_bearer_token`, a middleware, runs the full check before the handler of every endpoint
that needs a token and leaves its answer in a context variable of the request's task, where
the synchronous call finds it. A synchronous call for a token the middleware did not check
is refused (never a token let through unchecked). The gateway awaits `authenticate()`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.auth.ports import WatermarkKeys
from server.auth.principal import Principal
from server.auth.revocation import TokenWatermarks
from server.auth.tokens import TokenCodec
from server.http.endpoint import bearer_token, current_endpoint
from server.http.problems import Unauthorized

log = logging.getLogger("hubbub.auth")
# (token, principal) of the request being handled in this task, once fully checked.
_CHECKED: ContextVar[tuple[str, Principal] | None] = ContextVar("hubbub_checked_token",
                                                                default=None)


class _NotRead(enum.Enum):
    NOT_READ = enum.auto()


# For `still_valid`: the caller did not read the watermark cache (it reads it itself).
NOT_READ = _NotRead.NOT_READ
# What a caller read under `watermark_keys`: the value (0 for a missing one while the cache is
# marked complete), None for nothing cached, or NOT_READ.
CachedWatermark = int | None | Literal[_NotRead.NOT_READ]


def _revoked() -> Unauthorized:
    return Unauthorized("The access token was revoked (signed out everywhere); log in again",
                        code="token_revoked")


class Authenticator:
    """app[AUTHENTICATOR]: access tokens checked against the user's revocation watermark."""

    def __init__(self, tokens: TokenCodec, watermarks: TokenWatermarks) -> None:
        self._tokens = tokens
        self._watermarks = watermarks

    def verify(self, token: str) -> Principal:
        """The token's own checks only (TokenCodec.verify): for a caller that asks `revoked`
        itself, later."""
        return self._tokens.verify(token)

    async def check(self, token: str) -> Principal:
        """The caller the token names. Unauthorized `token_revoked` when the user signed out
        everywhere since it was issued; otherwise as TokenCodec.verify."""
        principal = self._tokens.verify(token)
        if await self.revoked(principal):
            raise _revoked()
        return principal

    async def revoked(self, principal: Principal) -> bool:
        """Whether the user signed out everywhere since the principal's token was issued."""
        return principal.issued_at < await self._watermarks.valid_after(principal.user_id)

    def watermark_keys(self, user_id: str) -> WatermarkKeys | None:
        """The Redis keys of the user's cached watermark and of the cache's completeness
        marker, or None (TokenWatermarks.cache_keys): for a caller that reads them in a script
        of its own, then asks `revoked_cached`."""
        return self._watermarks.cache_keys(user_id)

    async def revoked_cached(self, principal: Principal, cached: int | None) -> bool:
        """`revoked`, the caller having read the cache under `watermark_keys` (`cached`: what
        it held, 0 for nothing while marked complete, None for nothing otherwise)."""
        valid_after = await self._watermarks.valid_after_cached(principal.user_id, cached)
        return principal.issued_at < valid_after

    def __call__(self, token: str) -> Principal:
        """The synchronous form: the answer `check_bearer_token` found for this request."""
        checked = _CHECKED.get()
        if checked is None or checked[0] != token:
            log.error("an access token reached the synchronous authenticator unchecked")
            raise Unauthorized("The access token could not be checked", code="invalid_token")
        return checked[1]


async def authenticate(authenticator: Callable[[str], Principal], token: str) -> Principal:
    """Run the full check of an Authenticator, or call any other authenticator (a test's)."""
    if isinstance(authenticator, Authenticator):
        return await authenticator.check(token)
    return authenticator(token)


def verify_token(authenticator: Callable[[str], Principal], token: str) -> Principal:
    """The token's own checks (an Authenticator's, without the revocation watermark); the
    caller must ask `still_valid` before it trusts the principal."""
    if isinstance(authenticator, Authenticator):
        return authenticator.verify(token)
    return authenticator(token)


async def still_valid(authenticator: Callable[[str], Principal], principal: Principal,
                      cached: CachedWatermark = NOT_READ) -> bool:
    """False when the principal's user signed out everywhere since its token was issued.
    `cached`: what the caller read under `watermark_keys` (CachedWatermark), if it did."""
    if not isinstance(authenticator, Authenticator):
        return True
    if cached is NOT_READ:
        return not await authenticator.revoked(principal)
    return not await authenticator.revoked_cached(principal, cached)


def watermark_keys(authenticator: Callable[[str], Principal],
                   user_id: str) -> WatermarkKeys | None:
    """Authenticator.watermark_keys of an Authenticator; None for any other authenticator."""
    if isinstance(authenticator, Authenticator):
        return authenticator.watermark_keys(user_id)
    return None


def check_bearer_token(authenticator: Callable[[], Authenticator | None]) -> Middleware:
    """The middleware running Authenticator.check before each endpoint declared with auth.
    `authenticator` answers the app's Authenticator (None before startup)."""

    async def checked(request: web.Request, handler: web.Handler,
                      found: Authenticator) -> web.StreamResponse:
        token = bearer_token(request)  # raises the same 401 `missing_token` the endpoint would
        reset = _CHECKED.set((token, await found.check(token)))
        try:
            return await handler(request)
        finally:
            _CHECKED.reset(reset)

    # Not a coroutine function: a request that needs no token gets the handler's own
    # awaitable, with no frame of ours held while it runs. A Socket.IO websocket is such a
    # request for as long as the socket lives, and each frame held is memory per connection.
    @web.middleware
    def middleware(request: web.Request, handler: web.Handler) -> Awaitable[web.StreamResponse]:
        endpoint = current_endpoint(request)
        found = authenticator()
        if endpoint is None or not endpoint.auth or found is None:
            return handler(request)
        return checked(request, handler, found)

    return middleware
