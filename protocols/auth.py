"""Auth shapes: signup, login, token refresh and password reset bodies, and the token answer.

The records at the bottom (`Credentials`, `Rotation`) never go on the wire: they are what the
auth ports exchange with their storage adapters, kept here because storage may import only
`protocols`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocols.base import Inbound, Outbound
from protocols.fields import line, pattern, text
from protocols.users import Me

# Python's `$` also matches before a trailing newline; `(?!\n)` closes that gap (and is a
# no-op for ECMAScript clients reading the pattern from OpenAPI).
_END = r"$(?!\n)"
# Control characters (NUL among them: Postgres text refuses it) never belong in an address.
_ADDR = r"[^@\s\x00-\x1f\x7f]"

Username = pattern(
    r"^[A-Za-z0-9_]+" + _END, "may hold only letters (A-Z, a-z), digits and underscores",
    min_length=3, max_length=30,
    description="3-30 letters, digits or underscores; unique regardless of case",
)
Email = pattern(
    rf"^{_ADDR}+@{_ADDR}+\.{_ADDR}+" + _END,
    "must be an email address such as ann@example.com", max_length=254,
    description="An email address; unique regardless of case",
)
# Passwords are only ever hashed, never stored or sent on: any characters will do (and JSON
# decoding already refuses unpaired surrogates).
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
DisplayName = line(max_length=50)
# What a client presents at login or refresh: bounded, and storable so lookups cannot fail.
Identifier = text(min_length=1, max_length=254, description="A username or an email address")
GivenPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
OpaqueToken = text(min_length=1, max_length=512)
ResetCode = pattern(
    r"^[0-9]{6}$", "must be the 6 digits of the code mailed to you",
    min_length=6, max_length=6, description="The 6-digit code mailed",
)


class SignupRequest(Inbound):
    """`POST /v1/auth/signup`. display_name defaults to the username."""

    username: Username
    email: Email
    password: Password
    display_name: DisplayName | None = None


class LoginRequest(Inbound):
    """`POST /v1/auth/login`: identifier is a username or an email, matched regardless of case."""

    identifier: Identifier
    password: GivenPassword


class RefreshRequest(Inbound):
    """`POST /v1/auth/refresh`: refresh tokens are single-use; the answer carries the successor."""

    refresh_token: OpaqueToken


class LogoutRequest(Inbound):
    """`POST /v1/auth/logout`: ends the session (the token's whole family)."""

    refresh_token: OpaqueToken


class PasswordForgotRequest(Inbound):
    """`POST /v1/auth/password/forgot`: mails a one-time code if the address has an account."""

    email: Email


class PasswordResetRequest(Inbound):
    """`POST /v1/auth/password/reset`: sets a new password and signs out every device."""

    email: Email
    code: ResetCode
    new_password: Password


class AuthResponse(Outbound):
    """Signup, login and refresh. `expires_in` is the access token's lifetime in seconds."""

    user: Me
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


class TokenPair(Outbound):
    """A bare access/refresh pair (refresh answers with the fuller AuthResponse)."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


# Records exchanged with storage (never sent to clients).


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """An account as login needs it: the user and their password hash."""

    user: Me
    password_hash: str


RotationOutcome = Literal["rotated", "reused", "invalid"]


class Rotation(msgspec.Struct, frozen=True, kw_only=True):
    """What presenting a refresh token did.

    rotated: it was live; it is now used and its successor is stored (user_id, family_id set).
    reused:  it had already been used: a replay (user_id, family_id set; revoke the family).
    invalid: unknown, expired, or revoked without having been used (e.g. after logout).
    """

    outcome: RotationOutcome
    user_id: str | None = None
    family_id: str | None = None
