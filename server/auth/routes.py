"""The /v1/auth endpoints: thin handlers over AuthService.

Credential-guessing endpoints carry stricter per-client rate limits than the global default;
RATE_LIMIT_ROUTES overrides them by route name.
"""

from __future__ import annotations

from aiohttp import web

from protocols.auth import (
    AuthResponse,
    LoginRequest,
    LogoutRequest,
    PasswordForgotRequest,
    PasswordResetRequest,
    RefreshRequest,
    SignupRequest,
)
from protocols.users import Me
from server.auth.principal import Principal
from server.auth.wiring import AUTH_SERVICE
from server.http.endpoint import Endpoints

api = Endpoints("auth")


@api.post("/v1/auth/signup", name="auth.signup", summary="Create an account",
          body=SignupRequest, response=AuthResponse, status=201, auth=False, rate_limit=20,
          errors=(409,), description="Conflict codes: `username_taken`, `email_taken`.")
async def signup(request: web.Request, body: SignupRequest) -> AuthResponse:
    return await request.app[AUTH_SERVICE].signup(body)


@api.post("/v1/auth/login", name="auth.login", summary="Log in with a username or email",
          body=LoginRequest, response=AuthResponse, auth=False, rate_limit=30, errors=(401,),
          description="401 `invalid_credentials` for an unknown account or a wrong password.")
async def login(request: web.Request, body: LoginRequest) -> AuthResponse:
    return await request.app[AUTH_SERVICE].login(body)


@api.post("/v1/auth/refresh", name="auth.refresh",
          summary="Trade a refresh token for a new access and refresh token",
          body=RefreshRequest, response=AuthResponse, auth=False, errors=(401,),
          description="Refresh tokens are single-use. Replaying a used one answers 401 "
                      "`refresh_token_reused` and revokes its whole session; unknown, expired "
                      "or revoked tokens answer 401 `invalid_refresh_token`.")
async def refresh(request: web.Request, body: RefreshRequest) -> AuthResponse:
    return await request.app[AUTH_SERVICE].refresh(body.refresh_token)


@api.post("/v1/auth/logout", name="auth.logout", summary="End the refresh token's session",
          body=LogoutRequest, status=204, auth=False,
          description="Idempotent: an unknown or already revoked token also answers 204.")
async def logout(request: web.Request, body: LogoutRequest) -> None:
    await request.app[AUTH_SERVICE].logout(body.refresh_token)


@api.post("/v1/auth/logout_all", name="auth.logout_all", summary="Sign out everywhere",
          status=204, errors=(401,),
          description="Every refresh and access token of the caller stops working at once, "
                      "on REST and Socket.IO, and their connected sockets are closed. A "
                      "revoked access token answers 401 `token_revoked`.")
async def logout_all(request: web.Request, principal: Principal) -> None:
    await request.app[AUTH_SERVICE].logout_all(principal)


@api.post("/v1/auth/password/forgot", name="auth.password_forgot",
          summary="Mail a one-time password reset code", body=PasswordForgotRequest,
          status=202, auth=False, rate_limit=5,
          description="Always 202, whether or not the address has an account.")
async def password_forgot(request: web.Request, body: PasswordForgotRequest) -> None:
    await request.app[AUTH_SERVICE].forgot_password(body.email)


@api.post("/v1/auth/password/reset", name="auth.password_reset",
          summary="Set a new password with the mailed code; signs out every device",
          body=PasswordResetRequest, status=204, auth=False, rate_limit=10,
          description="422 `invalid_reset_code` (field `code`) when the code is wrong, "
                      "expired, or was guessed wrong too many times. On success every "
                      "refresh and access token of the account stops working at once and "
                      "its connected sockets are closed, as with `logout_all`.")
async def password_reset(request: web.Request, body: PasswordResetRequest) -> None:
    await request.app[AUTH_SERVICE].reset_password(body)


@api.get("/v1/auth/me", name="auth.me", summary="The caller's own account", response=Me)
async def me(request: web.Request, principal: Principal) -> Me:
    return await request.app[AUTH_SERVICE].me(principal)
