"""The Postgres auth adapters against a real database: uniqueness, rotation, reset codes."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from protocols.ids import new_id
from protocols.users import Me
from storage.errors import DuplicateError
from storage.postgres.accounts import PostgresAccountStore
from storage.postgres.password_resets import PostgresPasswordResetStore
from storage.postgres.refresh_tokens import PostgresRefreshTokenStore

pytestmark = pytest.mark.integration
HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _hash(label: str = "") -> bytes:
    return hashlib.sha256(f"{label}{uuid.uuid4()}".encode()).digest()


async def _user(accounts: PostgresAccountStore, name: str | None = None) -> Me:
    name = name or f"u_{uuid.uuid4().hex[:12]}"
    return await accounts.create(user_id=new_id(), username=name, email=f"{name}@example.com",
                                 password_hash="$argon2id$fake", display_name=name)


@pytest.fixture
def accounts(db_pool: asyncpg.Pool) -> PostgresAccountStore:
    return PostgresAccountStore(db_pool)


@pytest.fixture
def tokens(db_pool: asyncpg.Pool) -> PostgresRefreshTokenStore:
    return PostgresRefreshTokenStore(db_pool)


@pytest.fixture
def resets(db_pool: asyncpg.Pool) -> PostgresPasswordResetStore:
    return PostgresPasswordResetStore(db_pool)


async def test_accounts_are_unique_regardless_of_case(accounts: PostgresAccountStore) -> None:
    suffix = uuid.uuid4().hex[:10]
    user = await _user(accounts, f"Mixed_{suffix}")
    assert user.role == "user" and user.follower_count == 0 and user.avatar_media_id is None
    with pytest.raises(DuplicateError) as username:
        await accounts.create(user_id=new_id(), username=f"mixed_{suffix}",
                              email=f"x_{suffix}@example.com", password_hash="h",
                              display_name="")
    assert username.value.constraint == "users_username_key"
    with pytest.raises(DuplicateError) as email:
        await accounts.create(user_id=new_id(), username=f"other_{suffix}",
                              email=f"MIXED_{suffix}@EXAMPLE.com", password_hash="h",
                              display_name="")
    assert email.value.constraint == "users_email_key"


async def test_credentials_by_username_or_email(accounts: PostgresAccountStore) -> None:
    user = await _user(accounts)
    by_name = await accounts.find_credentials(user.username.upper())
    by_mail = await accounts.find_credentials(user.email.upper())
    assert by_name is not None and by_mail is not None
    assert by_name.user == by_mail.user == user and by_name.password_hash == "$argon2id$fake"
    assert await accounts.find_credentials(f"nobody_{uuid.uuid4().hex}") is None
    # An email-looking identifier never matches a username, and the other way round.
    assert await accounts.find_credentials(user.username + "@example.org") is None

    await accounts.set_password_hash(user.id, "$argon2id$new")
    again = await accounts.find_credentials(user.username)
    assert again is not None and again.password_hash == "$argon2id$new"
    assert again.user.updated_at >= user.updated_at
    assert await accounts.get_me(user.id) == again.user
    assert await accounts.get_me(new_id()) is None


async def test_rotation_spends_once_and_detects_reuse(
    accounts: PostgresAccountStore, tokens: PostgresRefreshTokenStore
) -> None:
    user, family = await _user(accounts), new_id()
    first, second, third = _hash(), _hash(), _hash()
    await tokens.issue(user_id=user.id, family_id=family, token_hash=first,
                       expires_at=_now() + HOUR)
    rotated = await tokens.rotate(token_hash=first, new_hash=second,
                                  new_expires_at=_now() + HOUR, now=_now())
    assert (rotated.outcome, rotated.user_id, rotated.family_id) == ("rotated", user.id, family)
    replay = await tokens.rotate(token_hash=first, new_hash=third,
                                 new_expires_at=_now() + HOUR, now=_now())
    assert (replay.outcome, replay.family_id) == ("reused", family)
    await tokens.revoke_family(family, now=_now())
    after = await tokens.rotate(token_hash=second, new_hash=third,
                                new_expires_at=_now() + HOUR, now=_now())
    assert after.outcome == "invalid"
    unknown = await tokens.rotate(token_hash=_hash(), new_hash=third,
                                  new_expires_at=_now() + HOUR, now=_now())
    assert unknown.outcome == "invalid"


async def test_expired_token_does_not_rotate(
    accounts: PostgresAccountStore, tokens: PostgresRefreshTokenStore, db_pool: asyncpg.Pool
) -> None:
    user, old, new = await _user(accounts), _hash(), _hash()
    await tokens.issue(user_id=user.id, family_id=new_id(), token_hash=old,
                       expires_at=_now() + HOUR)
    later = _now() + 2 * HOUR
    result = await tokens.rotate(token_hash=old, new_hash=new, new_expires_at=later + HOUR,
                                 now=later)
    assert result.outcome == "invalid"
    assert await db_pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1", user.id) == 1


async def test_concurrent_rotations_of_one_token_have_one_winner(
    accounts: PostgresAccountStore, tokens: PostgresRefreshTokenStore, db_pool: asyncpg.Pool
) -> None:
    user = await _user(accounts)
    for _ in range(5):
        family, presented = new_id(), _hash()
        await tokens.issue(user_id=user.id, family_id=family, token_hash=presented,
                           expires_at=_now() + HOUR)
        results = await asyncio.gather(*(
            tokens.rotate(token_hash=presented, new_hash=_hash(), new_expires_at=_now() + HOUR,
                          now=_now())
            for _ in range(2)
        ))
        assert sorted(r.outcome for r in results) == ["reused", "rotated"]
        assert await db_pool.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = $1", family) == 2


async def test_logout_and_sign_out_everywhere(
    accounts: PostgresAccountStore, tokens: PostgresRefreshTokenStore, db_pool: asyncpg.Pool
) -> None:
    user, other = await _user(accounts), await _user(accounts)
    a, b, c = _hash(), _hash(), _hash()
    for owner, token in ((user, a), (user, b), (other, c)):
        await tokens.issue(user_id=owner.id, family_id=new_id(), token_hash=token,
                           expires_at=_now() + HOUR)
    assert await tokens.revoke_family_of(a, now=_now()) is True
    assert await tokens.revoke_family_of(a, now=_now()) is True  # idempotent
    assert await tokens.revoke_family_of(_hash(), now=_now()) is False
    live = "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL"
    assert await db_pool.fetchval(live, user.id) == 1
    await tokens.revoke_all_for_user(user.id, now=_now())
    assert await db_pool.fetchval(live, user.id) == 0
    assert await db_pool.fetchval(live, other.id) == 1
    revoked = await tokens.rotate(token_hash=b, new_hash=_hash(), new_expires_at=_now() + HOUR,
                                  now=_now())
    assert revoked.outcome == "invalid"  # revoked but never used: not a replay


async def test_reset_code_is_consumed_once(
    accounts: PostgresAccountStore, resets: PostgresPasswordResetStore
) -> None:
    user, code = await _user(accounts), _hash()
    await resets.put(user_id=user.id, code_hash=_hash(), expires_at=_now() + HOUR)
    await resets.put(user_id=user.id, code_hash=code, expires_at=_now() + HOUR)  # replaces
    assert await resets.consume(user_id=user.id, code_hash=code, now=_now(), max_attempts=3)
    assert not await resets.consume(user_id=user.id, code_hash=code, now=_now(),
                                    max_attempts=3)


async def test_reset_code_expires(
    accounts: PostgresAccountStore, resets: PostgresPasswordResetStore
) -> None:
    user, code = await _user(accounts), _hash()
    await resets.put(user_id=user.id, code_hash=code, expires_at=_now() + HOUR)
    assert not await resets.consume(user_id=user.id, code_hash=code, now=_now() + 2 * HOUR,
                                    max_attempts=3)


async def test_concurrent_wrong_guesses_all_count(
    accounts: PostgresAccountStore, resets: PostgresPasswordResetStore, db_pool: asyncpg.Pool
) -> None:
    user, code = await _user(accounts), _hash()
    await resets.put(user_id=user.id, code_hash=code, expires_at=_now() + HOUR)
    guesses = await asyncio.gather(*(
        resets.consume(user_id=user.id, code_hash=_hash(), now=_now(), max_attempts=4)
        for _ in range(3)
    ))
    assert guesses == [False] * 3
    assert await db_pool.fetchval(
        "SELECT attempts FROM password_resets WHERE user_id = $1", user.id) == 3
    assert not await resets.consume(user_id=user.id, code_hash=_hash(), now=_now(),
                                    max_attempts=4)
    # Four wrong guesses: the code is dead, even the right one is refused now.
    assert not await resets.consume(user_id=user.id, code_hash=code, now=_now(),
                                    max_attempts=4)
    # A new code starts a fresh count.
    await resets.put(user_id=user.id, code_hash=code, expires_at=_now() + HOUR)
    assert await resets.consume(user_id=user.id, code_hash=code, now=_now(), max_attempts=4)
