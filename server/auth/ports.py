"""What the auth service needs from the outside world. Adapters: storage/postgres/accounts.py,
refresh_tokens.py, password_resets.py, token_watermarks.py, storage/redis/token_watermarks.py,
server/auth/revocation.py (the in-memory watermark cache) and server/auth/mail.py; in-memory
fakes in tests/unit.

Times are passed in (from the service's clock) rather than read from the database, so an
adapter and its fake agree on what "expired" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from protocols.auth import Credentials, Rotation
from protocols.users import Me


class AccountStore(Protocol):
    async def create(self, *, user_id: str, username: str, email: str, password_hash: str,
                     display_name: str) -> Me:
        """Insert a user with role "user"; durable when it returns.

        Raises storage.errors.DuplicateError with constraint `users_username_key` or
        `users_email_key` when the username or email is taken, compared regardless of case.
        """
        ...

    async def find_credentials(self, identifier: str) -> Credentials | None:
        """The account whose email (identifier contains "@") or username (otherwise) equals
        identifier regardless of case; None when there is none."""
        ...

    async def get_me(self, user_id: str) -> Me | None:
        """The account with this id, or None."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the stored hash (and bump updated_at); a missing user is a no-op."""
        ...


class RefreshTokenStore(Protocol):
    async def issue(self, *, user_id: str, family_id: str, token_hash: bytes,
                    expires_at: datetime) -> None:
        """Store a new live token starting (or continuing) a family."""
        ...

    async def start_session(self, *, user_id: str, family_id: str, token_hash: bytes,
                            expires_at: datetime, checked_at: datetime) -> int | None:
        """Store a new live token starting a family, unless the user signed out everywhere
        after `checked_at` (when the session's credentials started to be checked), atomically
        with `sign_out_everywhere`. Returns the user's access-token watermark as it stood
        then (0: none), or None when refused."""
        ...

    async def rotate(self, *, token_hash: bytes, new_hash: bytes, new_expires_at: datetime,
                     now: datetime) -> Rotation:
        """Spend a token and store its successor, atomically (one transaction).

        The presented token is marked used only if it is unused, unrevoked and expires after
        `now`; the successor joins the same family. Of two concurrent rotations of one token
        exactly one is `rotated`; the other sees `reused`. A token that was already used is
        `reused` (the caller revokes the family); unknown, expired, or revoked-but-unused is
        `invalid`. Nothing is written unless the outcome is `rotated`.
        """
        ...

    async def revoke_family(self, family_id: str, *, now: datetime) -> None:
        """Revoke every live token of the family (idempotent)."""
        ...

    async def revoke_family_of(self, token_hash: bytes, *, now: datetime) -> bool:
        """Revoke the family the token belongs to; False when the token is unknown."""
        ...

    async def revoke_all_for_user(self, user_id: str, *, now: datetime) -> None:
        """Revoke every live token of every family of the user."""
        ...

    async def sign_out_everywhere(self, user_id: str, *, now: datetime, at_least: int) -> int:
        """Revoke every live token of every family of the user and raise their access-token
        watermark (TokenWatermarkStore) to at least `at_least` and strictly above its
        previous value, signed out at `now`, in one atomic step serialized with rotations
        and `start_session`; returns the new watermark."""
        ...


class PasswordResetStore(Protocol):
    async def put(self, *, user_id: str, code_hash: bytes, expires_at: datetime) -> None:
        """Store the user's reset code, replacing any previous one (and its attempt count)."""
        ...

    async def consume(self, *, user_id: str, code_hash: bytes, now: datetime,
                      max_attempts: int) -> bool:
        """Check a presented code and, when right, delete it; atomic per user.

        True only if a code exists, expires after `now`, has had fewer than `max_attempts`
        wrong guesses, and matches. A wrong guess counts an attempt; once `max_attempts`
        wrong guesses are counted the code is dead (even the right code is refused).
        """
        ...


class TokenWatermarkStore(Protocol):
    """The record of each user's access-token watermark: their access tokens issued (`iat`,
    unix seconds) before it are revoked. 0 when the user never signed out everywhere.
    Raised by RefreshTokenStore.sign_out_everywhere."""

    async def get(self, user_id: str) -> int:
        """The user's watermark; 0 when there is none (or no such user)."""
        ...

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        """(watermark, when they last signed out everywhere); (0, None) when never."""
        ...


class RecentWatermarks(Protocol):
    """The watermarks that can still refuse a live token, for WatermarkRefresher."""

    async def recent(self, since: int, limit: int) -> list[tuple[str, int]]:
        """(user id, watermark) of at most `limit` users whose watermark is above `since`
        (unix seconds); user ids as tokens carry them."""
        ...


class WatermarkCache(Protocol):
    """A cache in front of TokenWatermarkStore, read on every authenticated request. Entries
    live a short while. Raises storage.errors.StorageError when the cache is unreachable."""

    async def get(self, user_id: str) -> int | None:
        """The cached watermark (0 when the cache knows the user has none that matters);
        None when nothing is cached: the store must answer."""
        ...

    async def offer(self, user_id: str, valid_after: int) -> None:
        """Cache a value read from the store, unless a value is cached already (which is
        newer or equal: only `raise_to` overwrites)."""
        ...

    async def raise_to(self, user_id: str, valid_after: int) -> None:
        """Cache a new watermark unless a higher one is cached."""
        ...


@dataclass(frozen=True, slots=True)
class WatermarkKeys:
    """Where a KeyedWatermarkCache keeps a user's watermark. A missing `watermark` key reads
    as 0 while the `complete` key exists (every watermark that matters is cached), and as
    "not cached" otherwise."""

    watermark: str
    complete: str


@runtime_checkable
class KeyedWatermarkCache(WatermarkCache, Protocol):
    """A WatermarkCache kept under one Redis key per user (storage/redis/token_watermarks.py),
    so a caller may read a watermark in the same script as other keys of its own."""

    def key(self, user_id: str) -> str:
        """The key holding the user's cached watermark."""
        ...

    def complete_key(self) -> str:
        """The marker key: while it exists, every watermark that matters is cached."""
        ...


class CompletableWatermarkCache(Protocol):
    """A WatermarkCache that WatermarkRefresher fills with every watermark that matters and
    then marks complete. Raises storage.errors.StorageError when unreachable."""

    async def load(self, watermarks: Sequence[tuple[str, int]]) -> None:
        """Raise each user's cached watermark to the given one (never lower it), each entry
        then kept long enough to outlive a marker set next."""
        ...

    async def mark_complete(self, elapsed: float) -> bool:
        """Mark the cache complete, its watermarks loaded from a read that started `elapsed`
        seconds ago; False (not marked) when that read is too old to vouch for."""
        ...


class Mailer(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Deliver (or hand off for delivery) one plain-text message. Raises on failure."""
        ...
