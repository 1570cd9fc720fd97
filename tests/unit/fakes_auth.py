"""In-memory fakes of the auth ports (server/auth/ports.py), with the same contracts."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocols.auth import Credentials, Rotation
from protocols.ids import new_id
from protocols.users import Me
from storage.errors import DuplicateError


class FakeClock:
    """Unix time that only moves when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeAccounts:
    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.users: dict[str, Me] = {}
        self.hashes: dict[str, str] = {}

    async def create(self, *, user_id: str, username: str, email: str, password_hash: str,
                     display_name: str) -> Me:
        for user in self.users.values():
            if user.username.lower() == username.lower():
                raise DuplicateError("users_username_key")
            if user.email.lower() == email.lower():
                raise DuplicateError("users_email_key")
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        user = Me(id=user_id, username=username, email=email, display_name=display_name,
                  bio="", avatar_media_id=None, role="user", follower_count=0,
                  following_count=0, created_at=now, updated_at=now)
        self.users[user_id] = user
        self.hashes[user_id] = password_hash
        return user

    async def find_credentials(self, identifier: str) -> Credentials | None:
        for user in self.users.values():
            value = user.email if "@" in identifier else user.username
            if value.lower() == identifier.lower():
                return Credentials(user=user, password_hash=self.hashes[user.id])
        return None

    async def get_me(self, user_id: str) -> Me | None:
        return self.users.get(user_id)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        if user_id in self.users:
            self.hashes[user_id] = password_hash


@dataclass
class TokenRow:
    id: str
    family_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class FakeRefreshTokens:
    """Refresh tokens in a dict; sign-outs everywhere write into `watermarks` (shared with
    the TokenWatermarkStore fake the checks read), as the Postgres store does."""

    def __init__(self, watermarks: FakeTokenWatermarks | None = None) -> None:
        self.rows: dict[bytes, TokenRow] = {}
        self.watermarks = watermarks or FakeTokenWatermarks()

    async def issue(self, *, user_id: str, family_id: str, token_hash: bytes,
                    expires_at: datetime) -> None:
        self.rows[token_hash] = TokenRow(new_id(), family_id, user_id, expires_at)

    async def start_session(self, *, user_id: str, family_id: str, token_hash: bytes,
                            expires_at: datetime, checked_at: datetime) -> int | None:
        valid_after, signed_out_at = self.watermarks.rows.get(user_id, (0, None))
        if signed_out_at is not None and signed_out_at > checked_at:
            return None
        self.rows[token_hash] = TokenRow(new_id(), family_id, user_id, expires_at)
        return valid_after

    async def sign_out_everywhere(self, user_id: str, *, now: datetime, at_least: int) -> int:
        await self.revoke_all_for_user(user_id, now=now)
        return self.watermarks.raise_to(user_id, at_least, now)

    async def rotate(self, *, token_hash: bytes, new_hash: bytes, new_expires_at: datetime,
                     now: datetime) -> Rotation:
        row = self.rows.get(token_hash)
        if row is None:
            return Rotation(outcome="invalid")
        if row.used_at is not None:
            return Rotation(outcome="reused", user_id=row.user_id, family_id=row.family_id)
        if row.revoked_at is not None or row.expires_at <= now:
            return Rotation(outcome="invalid")
        row.used_at = now
        self.rows[new_hash] = TokenRow(new_id(), row.family_id, row.user_id, new_expires_at)
        return Rotation(outcome="rotated", user_id=row.user_id, family_id=row.family_id)

    async def revoke_family(self, family_id: str, *, now: datetime) -> None:
        for row in self.rows.values():
            if row.family_id == family_id and row.revoked_at is None:
                row.revoked_at = now

    async def revoke_family_of(self, token_hash: bytes, *, now: datetime) -> bool:
        row = self.rows.get(token_hash)
        if row is None:
            return False
        await self.revoke_family(row.family_id, now=now)
        return True

    async def revoke_all_for_user(self, user_id: str, *, now: datetime) -> None:
        for row in self.rows.values():
            if row.user_id == user_id and row.revoked_at is None:
                row.revoked_at = now

    def live(self, user_id: str) -> list[TokenRow]:
        return [r for r in self.rows.values()
                if r.user_id == user_id and r.used_at is None and r.revoked_at is None]


@dataclass
class ResetRow:
    code_hash: bytes
    expires_at: datetime
    attempts: int = 0


class FakeResets:
    def __init__(self) -> None:
        self.rows: dict[str, ResetRow] = {}

    async def put(self, *, user_id: str, code_hash: bytes, expires_at: datetime) -> None:
        self.rows[user_id] = ResetRow(code_hash, expires_at)

    async def consume(self, *, user_id: str, code_hash: bytes, now: datetime,
                      max_attempts: int) -> bool:
        row = self.rows.get(user_id)
        if row is None:
            return False
        if row.expires_at <= now or row.attempts >= max_attempts:
            del self.rows[user_id]
            return False
        if hmac.compare_digest(row.code_hash, code_hash):
            del self.rows[user_id]
            return True
        row.attempts += 1
        return False


@dataclass
class FakeMailer:
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    failing: bool = False  # set to make every send raise, like an unreachable mail server

    async def send(self, to: str, subject: str, body: str) -> None:
        if self.failing:
            raise ConnectionError("mail server unreachable")
        self.sent.append((to, subject, body))


class FakeTokenWatermarks:
    """TokenWatermarkStore (server/auth/ports.py) in a dict: user id -> (watermark, last
    sign-out). `reads` counts reads, `failing` makes them raise like a database that went
    away. `raise_to` is the write FakeRefreshTokens.sign_out_everywhere makes."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, datetime | None]] = {}
        self.reads = 0
        self.failing = False

    async def get(self, user_id: str) -> int:
        return (await self.state(user_id))[0]

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        if self.failing:
            raise ConnectionError("database unreachable")
        self.reads += 1
        return self.rows.get(user_id, (0, None))

    def raise_to(self, user_id: str, at_least: int, now: datetime) -> int:
        value = max(self.rows.get(user_id, (0, None))[0] + 1, at_least)
        self.rows[user_id] = (value, now)
        return value
