"""Accounts and sessions: signup, login, refresh-token rotation, logout, password reset.

A session is a refresh-token family: login or signup starts one, each refresh spends the
presented token and adds its successor, logout revokes the family. Presenting a token that was
already spent means it leaked (or a client raced itself): the whole family is revoked, so the
thief and the owner both have to log in again.

Signing out everywhere (logout_all, a password reset) revokes every refresh token of the user,
raises their access-token watermark so that every access token issued until then is refused
at once (server/auth/revocation.py), and closes their live sockets on every node.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from protocols.auth import AuthResponse, LoginRequest, PasswordResetRequest, SignupRequest
from protocols.ids import new_id
from protocols.problems import FieldError
from protocols.users import Me
from server.auth.passwords import Passwords
from server.auth.ports import AccountStore, Mailer, PasswordResetStore, RefreshTokenStore
from server.auth.principal import Principal
from server.auth.revocation import TokenWatermarks, issued_at
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


def _signed_out_meanwhile() -> Unauthorized:
    # A sign-out everywhere (or a password reset) landed while the credentials were checked.
    return Unauthorized("The account was signed out everywhere meanwhile; log in again",
                        code="invalid_credentials")


def _invalid_reset_code() -> ValidationFailed:
    message = "The code is wrong or has expired; request a new one"
    return ValidationFailed(message, code="invalid_reset_code",
                            errors=[FieldError(field="code", message=message)])


def reset_code_hash(user_id: str, code: str) -> bytes:
    """What is stored for a reset code (bound to its user)."""
    return hashlib.sha256(f"{user_id}:{code}".encode()).digest()


# Closes every live socket of a user, on every node (server.gateway.session.disconnect_user).
SocketCloser = Callable[[str], Awaitable[None]]


class AuthService:
    def __init__(self, *, accounts: AccountStore, refresh_tokens: RefreshTokenStore,
                 resets: PasswordResetStore, mailer: Mailer, tokens: TokenCodec,
                 watermarks: TokenWatermarks, passwords: Passwords, settings: Settings,
                 close_sockets: SocketCloser | None = None, clock: Clock = time.time) -> None:
        self._accounts = accounts
        self._refresh_tokens = refresh_tokens
        self._resets = resets
        self._mailer = mailer
        self.tokens = tokens
        self._watermarks = watermarks
        self._passwords = passwords
        self._settings = settings
        self._close_sockets = close_sockets
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
        return await self._start_session(user, self._now())  # nobody signed it out yet

    async def login(self, body: LoginRequest) -> AuthResponse:
        """Start a session. Unauthorized `invalid_credentials` for an unknown account or a
        wrong password alike (both spend one hash verification), also when the account
        signed out everywhere (a password reset) while the password was being checked."""
        checked_at = self._now()  # before the stored hash is read
        credentials = await self._accounts.find_credentials(body.identifier)
        stored = credentials.password_hash if credentials else None
        verified = await self._passwords.verify(stored, body.password)
        if credentials is None or not verified.ok:
            raise _invalid_credentials()
        if verified.new_hash is not None:
            await self._accounts.set_password_hash(credentials.user.id, verified.new_hash)
        return await self._start_session(credentials.user, checked_at)

    async def refresh(self, refresh_token: str) -> AuthResponse:
        """Spend a refresh token for a new access token and its successor.

        Unauthorized `refresh_token_reused` when it was already spent (the family is revoked),
        `invalid_refresh_token` when it is unknown, expired or revoked (also by a sign-out
        everywhere racing this refresh).
        """
        now = self._now()  # also when the token started to be checked
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
        # A sign-out after this read sets a watermark above the one read here and above
        # `now`: it revokes the access token issued below, and the successor too (the
        # rotation came first). One between `now` and this read is seen here.
        valid_after, signed_out_at = await self._watermarks.state(user.id)
        if signed_out_at is not None and signed_out_at > now:
            raise Unauthorized("The refresh token is not valid", code="invalid_refresh_token")
        await self._watermarks.known(user.id, valid_after)
        return self._response(user, successor, issued_at(now, valid_after))

    async def logout(self, refresh_token: str) -> None:
        """End the token's session (its refresh-token family). Idempotent: an unknown or spent
        token is not an error. Access tokens already issued to the session run out with
        their TTL; `logout_all` stops them at once."""
        await self._refresh_tokens.revoke_family_of(hash_refresh_token(refresh_token),
                                                    now=self._now())

    async def logout_all(self, principal: Principal) -> None:
        """Sign the caller out everywhere: every refresh and access token of theirs stops
        working at once, REST and sockets, and their live sockets are closed."""
        await self._sign_out_everywhere(principal.user_id)
        log.info("signed out everywhere", extra={"user_id": principal.user_id})

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
        await self._sign_out_everywhere(user_id)
        log.info("password reset", extra={"user_id": user_id})

    async def me(self, principal: Principal) -> Me:
        user = await self._accounts.get_me(principal.user_id)
        if user is None:
            raise Unauthorized("The account no longer exists", code="invalid_token")
        return user

    async def _sign_out_everywhere(self, user_id: str) -> None:
        # The time now, after any password change: a login that read the old hash started
        # before it.
        valid_after = await self._refresh_tokens.sign_out_everywhere(
            user_id, now=self._now(), at_least=self._watermarks.next_watermark())
        await self._watermarks.raised(user_id, valid_after)
        if self._close_sockets is None:
            return
        try:
            await self._close_sockets(user_id)
        except Exception:
            # The tokens are revoked all the same: such a socket can neither reconnect nor
            # auth:refresh, and it is closed when its token expires.
            log.exception("closing the sockets of a signed-out user failed",
                          extra={"user_id": user_id})

    async def _start_session(self, user: Me, checked_at: datetime) -> AuthResponse:
        refresh_token = new_refresh_token()
        valid_after = await self._refresh_tokens.start_session(
            user_id=user.id, family_id=new_id(), token_hash=hash_refresh_token(refresh_token),
            expires_at=self._now() + timedelta(seconds=self._settings.refresh_token_ttl),
            checked_at=checked_at,
        )
        if valid_after is None:
            raise _signed_out_meanwhile()
        await self._watermarks.known(user.id, valid_after)  # the socket connect reads it next
        return self._response(user, refresh_token, issued_at(checked_at, valid_after))

    def _response(self, user: Me, refresh_token: str, iat: int) -> AuthResponse:
        return AuthResponse(user=user,
                            access_token=self.tokens.issue(user.id, user.role, issued_at=iat),
                            refresh_token=refresh_token, expires_in=self.tokens.ttl)
