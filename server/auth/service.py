"""Accounts and sessions: signup, login, refresh-token rotation, logout, password reset.

A session is a refresh-token family: login or signup starts one, each refresh spends the
presented token and adds its successor, logout revokes the family. Presenting a token that was
already spent means it leaked (or a client raced itself): the whole family is revoked, so the
thief and the owner both have to log in again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

from protocols.auth import AuthResponse, LoginRequest, PasswordResetRequest, SignupRequest
from protocols.ids import new_id
from protocols.problems import FieldError
from protocols.users import Me
from server.auth.passwords import Passwords
from server.auth.ports import AccountStore, Mailer, PasswordResetStore, RefreshTokenStore
from server.auth.principal import Principal
from server.auth.tokens import Clock, TokenCodec, hash_refresh_token, new_refresh_token
from server.config import Settings
from server.http.problems import Conflict, Unauthorized, ValidationFailed
from storage.errors import DuplicateError

log = logging.getLogger("hubbub.auth")

_CONFLICTS = {
    "users_username_key": ("That username is taken", "username_taken"),
    "users_email_key": ("An account with that email already exists", "email_taken"),
}
_RESET_SUBJECT = "Your Hubbub password reset code"


def _invalid_credentials() -> Unauthorized:
    # One message for unknown accounts and wrong passwords: no hint which it was.
    return Unauthorized("The username, email or password is wrong", code="invalid_credentials")


def _invalid_reset_code() -> ValidationFailed:
    message = "The code is wrong or has expired; request a new one"
    return ValidationFailed(message, code="invalid_reset_code",
                            errors=[FieldError(field="code", message=message)])


def reset_code_hash(user_id: str, code: str) -> bytes:
    """What is stored for a reset code (bound to its user)."""
    return hashlib.sha256(f"{user_id}:{code}".encode()).digest()


class AuthService:
    def __init__(self, *, accounts: AccountStore, refresh_tokens: RefreshTokenStore,
                 resets: PasswordResetStore, mailer: Mailer, tokens: TokenCodec,
                 passwords: Passwords, settings: Settings, clock: Clock = time.time) -> None:
        self._accounts = accounts
        self._refresh_tokens = refresh_tokens
        self._resets = resets
        self._mailer = mailer
        self.tokens = tokens
        self._passwords = passwords
        self._settings = settings
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    async def signup(self, body: SignupRequest) -> AuthResponse:
        """Create an account and start a session. Conflict `username_taken` / `email_taken`."""
        password_hash = await self._passwords.hash(body.password)
        display_name = body.username if body.display_name is None else body.display_name
        try:
            user = await self._accounts.create(
                user_id=new_id(), username=body.username, email=body.email,
                password_hash=password_hash, display_name=display_name,
            )
        except DuplicateError as exc:
            if exc.constraint not in _CONFLICTS:
                raise
            detail, code = _CONFLICTS[exc.constraint]
            raise Conflict(detail, code=code) from None
        log.info("account created", extra={"user_id": user.id})
        return await self._start_session(user)

    async def login(self, body: LoginRequest) -> AuthResponse:
        """Start a session. Unauthorized `invalid_credentials` for an unknown account or a
        wrong password alike (both spend one hash verification)."""
        credentials = await self._accounts.find_credentials(body.identifier)
        stored = credentials.password_hash if credentials else None
        verified = await self._passwords.verify(stored, body.password)
        if credentials is None or not verified.ok:
            raise _invalid_credentials()
        if verified.new_hash is not None:
            await self._accounts.set_password_hash(credentials.user.id, verified.new_hash)
        return await self._start_session(credentials.user)

    async def refresh(self, refresh_token: str) -> AuthResponse:
        """Spend a refresh token for a new access token and its successor.

        Unauthorized `refresh_token_reused` when it was already spent (the family is revoked),
        `invalid_refresh_token` when it is unknown, expired or revoked.
        """
        now = self._now()
        successor = new_refresh_token()
        rotation = await self._refresh_tokens.rotate(
            token_hash=hash_refresh_token(refresh_token),
            new_hash=hash_refresh_token(successor),
            new_expires_at=now + timedelta(seconds=self._settings.refresh_token_ttl), now=now,
        )
        if rotation.outcome == "reused":
            assert rotation.family_id is not None
            await self._refresh_tokens.revoke_family(rotation.family_id, now=now)
            log.warning("refresh token reused; session revoked",
                        extra={"user_id": rotation.user_id, "family_id": rotation.family_id})
            raise Unauthorized("This refresh token was already used; the session is revoked",
                               code="refresh_token_reused")
        user = await self._accounts.get_me(rotation.user_id) if rotation.user_id else None
        if rotation.outcome != "rotated" or user is None:
            raise Unauthorized("The refresh token is not valid", code="invalid_refresh_token")
        return self._response(user, successor)

    async def logout(self, refresh_token: str) -> None:
        """End the token's session. Idempotent: an unknown or spent token is not an error."""
        await self._refresh_tokens.revoke_family_of(hash_refresh_token(refresh_token),
                                                    now=self._now())

    async def forgot_password(self, email: str) -> None:
        """Mail a one-time code when the address has an account. Says nothing either way."""
        credentials = await self._accounts.find_credentials(email)
        if credentials is None:
            return
        user = credentials.user
        code = f"{secrets.randbelow(1_000_000):06d}"
        ttl = self._settings.password_reset_ttl
        await self._resets.put(user_id=user.id, code_hash=reset_code_hash(user.id, code),
                               expires_at=self._now() + timedelta(seconds=ttl))
        body = (f"Your Hubbub password reset code is {code}.\n"
                f"It expires in {max(1, ttl // 60)} minutes. If you did not ask for it, "
                "ignore this message.")
        try:
            await self._mailer.send(user.email, _RESET_SUBJECT, body)
        except Exception:  # the answer must not reveal whether the address has an account
            log.exception("sending a password reset code failed", extra={"user_id": user.id})

    async def reset_password(self, body: PasswordResetRequest) -> None:
        """Set a new password with a mailed code, and sign out every device.

        ValidationFailed `invalid_reset_code` (field `code`) when the account or code does not
        match, the code expired, or too many wrong codes were tried.
        """
        credentials = await self._accounts.find_credentials(body.email)
        if credentials is None:
            raise _invalid_reset_code()
        user_id = credentials.user.id
        now = self._now()
        consumed = await self._resets.consume(
            user_id=user_id, code_hash=reset_code_hash(user_id, body.code), now=now,
            max_attempts=self._settings.password_reset_max_attempts,
        )
        if not consumed:
            raise _invalid_reset_code()
        await self._accounts.set_password_hash(user_id,
                                               await self._passwords.hash(body.new_password))
        await self._refresh_tokens.revoke_all_for_user(user_id, now=now)
        log.info("password reset", extra={"user_id": user_id})

    async def me(self, principal: Principal) -> Me:
        user = await self._accounts.get_me(principal.user_id)
        if user is None:
            raise Unauthorized("The account no longer exists", code="invalid_token")
        return user

    async def _start_session(self, user: Me) -> AuthResponse:
        refresh_token = new_refresh_token()
        await self._refresh_tokens.issue(
            user_id=user.id, family_id=new_id(), token_hash=hash_refresh_token(refresh_token),
            expires_at=self._now() + timedelta(seconds=self._settings.refresh_token_ttl),
        )
        return self._response(user, refresh_token)

    def _response(self, user: Me, refresh_token: str) -> AuthResponse:
        return AuthResponse(user=user, access_token=self.tokens.issue(user.id, user.role),
                            refresh_token=refresh_token, expires_in=self.tokens.ttl)
