"""Access tokens (short-lived HS256 JWTs) and refresh tokens (opaque, stored only hashed).

Access token claims: iss, aud, sub (user id), role, iat, nbf, exp (unix seconds), jti.
Only HS256 is accepted when decoding: the algorithm is pinned, never read from the token.
A token is refused when it claims a lifetime (exp - iat) longer than the configured TTL (one
forged with a leaked secret to last a year, or minted before the TTL was cut) or an `iat` in
the future beyond the skew allowance. Whether the user signed out everywhere since `iat` is
checked by server/auth/authenticator.py.
Times come from an injected clock so tests can move time instead of sleeping.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt

from protocols.ids import new_id
from protocols.roles import ROLES, Role
from server.auth.principal import Principal
from server.http.problems import Unauthorized

Clock = Callable[[], float]  # unix time in seconds
ALGORITHM = "HS256"
_REQUIRED = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]
# pyjwt checks signature, algorithm, issuer, audience and presence; we check times ourselves
# against the injected clock.
_DECODE_OPTIONS: Any = {
    "require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
}


def _invalid(detail: str = "The access token is not valid") -> Unauthorized:
    return Unauthorized(detail, code="invalid_token")


class TokenCodec:
    """Issues and verifies access tokens for one secret, issuer and audience."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl: int,
                 clock: Clock = time.time, leeway: int = 30) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl
        self._clock = clock
        # Tolerated clock skew between nodes for `nbf` and `iat` (a token minted a moment ago
        # elsewhere); expiry is exact.
        self._leeway = leeway

    def issue(self, user_id: str, role: Role, *, issued_at: int | None = None) -> str:
        """A new access token, valid from now for TTL seconds after `iat`. `issued_at` (default:
        now) is the `iat` to claim: AuthService fixes it when it starts checking credentials
        and lifts it to the user's revocation watermark (server/auth/revocation.py), so it
        may lie a moment behind or ahead of the clock."""
        now = int(self._clock())
        iat = now if issued_at is None else issued_at
        claims = {
            "iss": self._issuer, "aud": self._audience, "sub": user_id, "role": role,
            "iat": iat, "nbf": now, "exp": iat + self.ttl, "jti": new_id(),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The caller the token names. Raises Unauthorized with code `token_expired` when it
        has expired, `invalid_token` for anything else wrong with it."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                audience=self._audience, issuer=self._issuer,
                                options=_DECODE_OPTIONS)
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise _invalid() from None
        sub, role, jti = claims["sub"], claims.get("role"), claims["jti"]
        times = [claims["iat"], claims["nbf"], claims["exp"]]
        if (not isinstance(sub, str) or not isinstance(jti, str) or role not in ROLES
                or not all(isinstance(t, int) and not isinstance(t, bool) for t in times)):
            raise _invalid()
        now = self._clock()
        if claims["nbf"] > now + self._leeway or claims["iat"] > now + self._leeway:
            raise _invalid("The access token is not valid yet")
        if claims["exp"] - claims["iat"] > self.ttl:
            raise _invalid("The access token claims a longer lifetime than this server allows")
        if claims["exp"] <= now:
            raise Unauthorized("The access token has expired; refresh it", code="token_expired")
        return Principal(user_id=sub, role=role, token_id=jti, issued_at=claims["iat"],
                         expires_at=claims["exp"])


def new_refresh_token() -> str:
    """A fresh opaque refresh token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> bytes:
    """What is stored for a refresh token: its SHA-256, so a database leak reveals none."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
