"""AuthService against in-memory ports and a movable clock."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher, profiles

from protocols.auth import LoginRequest, PasswordResetRequest, SignupRequest
from server.auth.passwords import Passwords
from server.auth.service import AuthService
from server.auth.tokens import TokenCodec
from server.config import Settings
from server.http.problems import Conflict, ProblemError, Unauthorized, ValidationFailed
from tests.unit.fakes_auth import (
    FakeAccounts,
    FakeClock,
    FakeMailer,
    FakeRefreshTokens,
    FakeResets,
)

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)  # unit tests need speed, not strength
SETTINGS = Settings(refresh_token_ttl=3600, password_reset_ttl=600,
                    password_reset_max_attempts=3, access_token_ttl=900)


@dataclass
class World:
    service: AuthService
    clock: FakeClock
    accounts: FakeAccounts
    tokens: FakeRefreshTokens
    resets: FakeResets
    mailer: FakeMailer
    codec: TokenCodec


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    accounts, tokens, resets, mailer = (FakeAccounts(clock), FakeRefreshTokens(), FakeResets(),
                                        FakeMailer())
    codec = TokenCodec("s" * 32, issuer="hubbub", audience="hubbub-api", ttl=900, clock=clock)
    service = AuthService(accounts=accounts, refresh_tokens=tokens, resets=resets,
                          mailer=mailer, tokens=codec, passwords=Passwords(CHEAP),
                          settings=SETTINGS, clock=clock)
    return World(service, clock, accounts, tokens, resets, mailer, codec)


def _signup(name: str | None = None, **changes: str) -> SignupRequest:
    name = name or f"user_{uuid.uuid4().hex[:8]}"
    fields = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    fields.update(changes)
    return SignupRequest(**fields)


async def _code(world: World, email: str) -> str:
    await world.service.forgot_password(email)
    to, _, body = world.mailer.sent[-1]
    assert to == email
    match = re.search(r"\b(\d{6})\b", body)
    assert match
    return match.group(1)


def _code_of(error: pytest.ExceptionInfo[ProblemError]) -> str:
    return error.value.code


async def test_signup_starts_a_session(world: World) -> None:
    response = await world.service.signup(_signup("alice_1"))
    assert response.user.username == "alice_1" and response.user.display_name == "alice_1"
    assert response.token_type == "Bearer" and response.expires_in == 900
    principal = world.codec.verify(response.access_token)
    assert (principal.user_id, principal.role) == (response.user.id, "user")
    assert len(world.tokens.live(response.user.id)) == 1
    assert world.accounts.hashes[response.user.id].startswith("$argon2id$")
    named = await world.service.signup(_signup(display_name="Bob B."))
    assert named.user.display_name == "Bob B."


async def test_signup_conflicts_ignore_case(world: World) -> None:
    await world.service.signup(_signup("carol", email="carol@example.com"))
    with pytest.raises(Conflict) as taken:
        await world.service.signup(_signup("CAROL", email="other@example.com"))
    assert _code_of(taken) == "username_taken"
    with pytest.raises(Conflict) as email_taken:
        await world.service.signup(_signup("carol2", email="Carol@Example.COM"))
    assert _code_of(email_taken) == "email_taken"


async def test_login_by_username_or_email_regardless_of_case(world: World) -> None:
    user = (await world.service.signup(_signup("dave"))).user
    by_name = await world.service.login(LoginRequest(identifier="DAVE", password="correct horse"))
    by_mail = await world.service.login(
        LoginRequest(identifier="Dave@Example.com", password="correct horse"))
    assert by_name.user.id == by_mail.user.id == user.id
    assert by_name.refresh_token != by_mail.refresh_token
    assert len(world.tokens.live(user.id)) == 3  # signup + two logins: three sessions


async def test_wrong_password_and_unknown_user_look_the_same(world: World) -> None:
    await world.service.signup(_signup("erin"))
    with pytest.raises(Unauthorized) as wrong:
        await world.service.login(LoginRequest(identifier="erin", password="wrong horse"))
    with pytest.raises(Unauthorized) as unknown:
        await world.service.login(LoginRequest(identifier="nobody", password="correct horse"))
    assert _code_of(wrong) == _code_of(unknown) == "invalid_credentials"
    assert wrong.value.detail == unknown.value.detail


async def test_login_upgrades_an_outdated_hash(world: World) -> None:
    user = (await world.service.signup(_signup("frank"))).user
    weaker = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    world.accounts.hashes[user.id] = weaker.hash("correct horse")
    await world.service.login(LoginRequest(identifier="frank", password="correct horse"))
    assert not CHEAP.check_needs_rehash(world.accounts.hashes[user.id])
    assert CHEAP.verify(world.accounts.hashes[user.id], "correct horse")


async def test_refresh_rotates_and_reuse_revokes_the_family(world: World) -> None:
    first = await world.service.signup(_signup())
    other_session = await world.service.login(
        LoginRequest(identifier=first.user.username, password="correct horse"))
    second = await world.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.user.id == first.user.id
    assert world.codec.verify(second.access_token).user_id == first.user.id

    with pytest.raises(Unauthorized) as replay:
        await world.service.refresh(first.refresh_token)
    assert _code_of(replay) == "refresh_token_reused"
    with pytest.raises(Unauthorized) as successor:
        await world.service.refresh(second.refresh_token)
    assert _code_of(successor) == "invalid_refresh_token"
    # Only the replayed family died; the other session lives on.
    assert (await world.service.refresh(other_session.refresh_token)).user.id == first.user.id


async def test_refresh_token_expires(world: World) -> None:
    session = await world.service.signup(_signup())
    world.clock.advance(SETTINGS.refresh_token_ttl)
    with pytest.raises(Unauthorized) as expired:
        await world.service.refresh(session.refresh_token)
    assert _code_of(expired) == "invalid_refresh_token"
    with pytest.raises(Unauthorized) as unknown:
        await world.service.refresh("never-issued")
    assert _code_of(unknown) == "invalid_refresh_token"


async def test_logout_ends_the_session_and_is_idempotent(world: World) -> None:
    session = await world.service.signup(_signup())
    rotated = await world.service.refresh(session.refresh_token)
    await world.service.logout(rotated.refresh_token)
    await world.service.logout(rotated.refresh_token)
    await world.service.logout("never-issued")
    with pytest.raises(Unauthorized) as after:
        await world.service.refresh(rotated.refresh_token)
    assert _code_of(after) == "invalid_refresh_token"
    assert world.tokens.live(session.user.id) == []


async def test_forgot_mails_a_code_only_to_known_addresses(world: World) -> None:
    await world.service.forgot_password("ghost@example.com")
    assert world.mailer.sent == []
    user = (await world.service.signup(_signup("gina"))).user
    await world.service.forgot_password("GINA@example.com")
    [(to, subject, body)] = world.mailer.sent
    assert to == user.email and "reset" in subject.lower()
    assert re.search(r"\b\d{6}\b", body)
    assert user.id in world.resets.rows


async def test_reset_sets_the_password_and_signs_out_everywhere(world: World) -> None:
    session = await world.service.signup(_signup("hank"))
    await world.service.login(LoginRequest(identifier="hank", password="correct horse"))
    code = await _code(world, session.user.email)
    reset = PasswordResetRequest(email=session.user.email, code=code,
                                 new_password="battery staple")
    await world.service.reset_password(reset)

    assert world.tokens.live(session.user.id) == []
    with pytest.raises(Unauthorized):
        await world.service.login(LoginRequest(identifier="hank", password="correct horse"))
    assert (await world.service.login(
        LoginRequest(identifier="hank", password="battery staple"))).user.id == session.user.id
    with pytest.raises(ValidationFailed) as reused:  # the code was consumed
        await world.service.reset_password(reset)
    assert _code_of(reused) == "invalid_reset_code"
    assert [e.field for e in reused.value.errors or []] == ["code"]


async def test_reset_code_dies_after_too_many_wrong_guesses(world: World) -> None:
    user = (await world.service.signup(_signup())).user
    code = await _code(world, user.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(SETTINGS.password_reset_max_attempts):
        with pytest.raises(ValidationFailed):
            await world.service.reset_password(
                PasswordResetRequest(email=user.email, code=wrong, new_password="new password"))
    with pytest.raises(ValidationFailed) as dead:
        await world.service.reset_password(
            PasswordResetRequest(email=user.email, code=code, new_password="new password"))
    assert _code_of(dead) == "invalid_reset_code"
    # A fresh code works again.
    fresh = await _code(world, user.email)
    await world.service.reset_password(
        PasswordResetRequest(email=user.email, code=fresh, new_password="new password"))


async def test_reset_code_expires_and_unknown_email_is_refused(world: World) -> None:
    user = (await world.service.signup(_signup())).user
    code = await _code(world, user.email)
    world.clock.advance(SETTINGS.password_reset_ttl)
    with pytest.raises(ValidationFailed) as expired:
        await world.service.reset_password(
            PasswordResetRequest(email=user.email, code=code, new_password="new password"))
    assert _code_of(expired) == "invalid_reset_code"
    with pytest.raises(ValidationFailed) as unknown:
        await world.service.reset_password(
            PasswordResetRequest(email="ghost@example.com", code=code,
                                 new_password="new password"))
    assert _code_of(unknown) == "invalid_reset_code"


async def test_a_new_code_replaces_the_old_one(world: World) -> None:
    user = (await world.service.signup(_signup())).user
    old = await _code(world, user.email)
    new = await _code(world, user.email)
    if old != new:  # one in a million they coincide
        with pytest.raises(ValidationFailed):
            await world.service.reset_password(
                PasswordResetRequest(email=user.email, code=old, new_password="new password"))
    await world.service.reset_password(
        PasswordResetRequest(email=user.email, code=new, new_password="new password"))


async def test_me_returns_the_account_or_refuses_a_vanished_one(world: World) -> None:
    session = await world.service.signup(_signup())
    principal = world.codec.verify(session.access_token)
    assert (await world.service.me(principal)).id == session.user.id
    del world.accounts.users[session.user.id]
    with pytest.raises(Unauthorized) as gone:
        await world.service.me(principal)
    assert _code_of(gone) == "invalid_token"


async def test_a_failing_mailer_does_not_leak_through_forgot(world: World) -> None:
    user = (await world.service.signup(_signup())).user
    world.mailer.failing = True
    await world.service.forgot_password(user.email)  # still "accepted", like any address
    assert user.id in world.resets.rows
