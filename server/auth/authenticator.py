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

import logging
from collections.abc import Callable
from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.auth.principal import Principal
from server.auth.revocation import TokenWatermarks
from server.auth.tokens import TokenCodec
from server.http.endpoint import bearer_token, current_endpoint
from server.http.problems import Unauthorized

log = logging.getLogger("hubbub.auth")
# (token, principal) of the request being handled in this task, once fully checked.
_CHECKED: ContextVar[tuple[str, Principal] | None] = ContextVar("hubbub_checked_token",
                                                                default=None)


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


async def still_valid(authenticator: Callable[[str], Principal], principal: Principal) -> bool:
    """False when the principal's user signed out everywhere since its token was issued."""
    if isinstance(authenticator, Authenticator):
        return not await authenticator.revoked(principal)
    return True


def check_bearer_token(authenticator: Callable[[], Authenticator | None]) -> Middleware:
    """The middleware running Authenticator.check before each endpoint declared with auth.
    `authenticator` answers the app's Authenticator (None before startup)."""

    @web.middleware
    async def middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        endpoint = current_endpoint(request)
        found = authenticator()
        if endpoint is None or not endpoint.auth or found is None:
            return await handler(request)
        token = bearer_token(request)  # raises the same 401 `missing_token` the endpoint would
        reset = _CHECKED.set((token, await found.check(token)))
        try:
            return await handler(request)
        finally:
            _CHECKED.reset(reset)

    return middleware
