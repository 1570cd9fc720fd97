"""AuthService against in-memory ports and a movable clock: sign-up, login, refresh, logout,
password reset, sockets closed on sign-out. Races: test_auth_races.py."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from protocols.auth import LoginRequest, PasswordResetRequest
from server.auth.passwords import Passwords
from server.auth.revocation import MemoryWatermarkCache, TokenWatermarks
from server.auth.service import AuthService
from server.http.problems import Conflict, Unauthorized, ValidationFailed
from tests.unit.auth_service.world import (
    CHEAP,
    SETTINGS,
    World,
    code_of,
    reset_code,
    signup_request,
)
from tests.unit.fakes_auth import (
    FakeRefreshTokens,
    FakeTokenWatermarks,
)


async def test_signup_starts_a_session(world: World) -> None:
    response = await world.service.signup(signup_request("alice_1"))
    assert response.user.username == "alice_1" and response.user.display_name == "alice_1"
    assert response.token_type == "Bearer" and response.expires_in == 900
    principal = world.codec.verify(response.access_token)
    assert (principal.user_id, principal.role) == (response.user.id, "user")
    assert len(world.tokens.live(response.user.id)) == 1
    assert world.accounts.hashes[response.user.id].startswith("$argon2id$")
    named = await world.service.signup(signup_request(display_name="Bob B."))
    assert named.user.display_name == "Bob B."


async def test_signup_conflicts_ignore_case(world: World) -> None:
    await world.service.signup(signup_request("carol", email="carol@example.com"))
    with pytest.raises(Conflict) as taken:
        await world.service.signup(signup_request("CAROL", email="other@example.com"))
    assert code_of(taken) == "username_taken"
    with pytest.raises(Conflict) as email_taken:
        await world.service.signup(signup_request("carol2", email="Carol@Example.COM"))
    assert code_of(email_taken) == "email_taken"


async def test_login_by_username_or_email_regardless_of_case(world: World) -> None:
    user = (await world.service.signup(signup_request("dave"))).user
    by_name = await world.service.login(LoginRequest(identifier="DAVE", password="correct horse"))
    by_mail = await world.service.login(
        LoginRequest(identifier="Dave@Example.com", password="correct horse"))
    assert by_name.user.id == by_mail.user.id == user.id
    assert by_name.refresh_token != by_mail.refresh_token
    assert len(world.tokens.live(user.id)) == 3  # signup + two logins: three sessions


async def test_wrong_password_and_unknown_user_look_the_same(world: World) -> None:
    await world.service.signup(signup_request("erin"))
    with pytest.raises(Unauthorized) as wrong:
        await world.service.login(LoginRequest(identifier="erin", password="wrong horse"))
    with pytest.raises(Unauthorized) as unknown:
        await world.service.login(LoginRequest(identifier="nobody", password="correct horse"))
    assert code_of(wrong) == code_of(unknown) == "invalid_credentials"
    assert wrong.value.detail == unknown.value.detail


async def test_login_upgrades_an_outdated_hash(world: World) -> None:
    user = (await world.service.signup(signup_request("frank"))).user
    weaker = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    world.accounts.hashes[user.id] = weaker.hash("correct horse")
    await world.service.login(LoginRequest(identifier="frank", password="correct horse"))
    assert not CHEAP.check_needs_rehash(world.accounts.hashes[user.id])
    assert CHEAP.verify(world.accounts.hashes[user.id], "correct horse")


async def test_refresh_rotates_and_reuse_revokes_the_family(world: World) -> None:
    first = await world.service.signup(signup_request())
    other_session = await world.service.login(
        LoginRequest(identifier=first.user.username, password="correct horse"))
    second = await world.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.user.id == first.user.id
    assert world.codec.verify(second.access_token).user_id == first.user.id

    with pytest.raises(Unauthorized) as replay:
        await world.service.refresh(first.refresh_token)
    assert code_of(replay) == "refresh_token_reused"
    with pytest.raises(Unauthorized) as successor:
        await world.service.refresh(second.refresh_token)
    assert code_of(successor) == "invalid_refresh_token"
    # Only the replayed family died; the other session lives on.
    assert (await world.service.refresh(other_session.refresh_token)).user.id == first.user.id


async def test_refresh_token_expires(world: World) -> None:
    session = await world.service.signup(signup_request())
    world.clock.advance(SETTINGS.refresh_token_ttl)
    with pytest.raises(Unauthorized) as expired:
        await world.service.refresh(session.refresh_token)
    assert code_of(expired) == "invalid_refresh_token"
    with pytest.raises(Unauthorized) as unknown:
        await world.service.refresh("never-issued")
    assert code_of(unknown) == "invalid_refresh_token"


async def test_logout_ends_the_session_and_is_idempotent(world: World) -> None:
    session = await world.service.signup(signup_request())
    rotated = await world.service.refresh(session.refresh_token)
    await world.service.logout(rotated.refresh_token)
    await world.service.logout(rotated.refresh_token)
    await world.service.logout("never-issued")
    with pytest.raises(Unauthorized) as after:
        await world.service.refresh(rotated.refresh_token)
    assert code_of(after) == "invalid_refresh_token"
    assert world.tokens.live(session.user.id) == []


async def test_forgot_mails_a_code_only_to_known_addresses(world: World) -> None:
    await world.service.forgot_password("ghost@example.com")
    assert world.mailer.sent == []
    user = (await world.service.signup(signup_request("gina"))).user
    await world.service.forgot_password("GINA@example.com")
    [(to, subject, body)] = world.mailer.sent
    assert to == user.email and "reset" in subject.lower()
    assert re.search(r"\b\d{6}\b", body)
    assert user.id in world.resets.rows


async def test_reset_sets_the_password_and_signs_out_everywhere(world: World) -> None:
    session = await world.service.signup(signup_request("hank"))
    await world.service.login(LoginRequest(identifier="hank", password="correct horse"))
    code = await reset_code(world, session.user.email)
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
    assert code_of(reused) == "invalid_reset_code"
    assert [e.field for e in reused.value.errors or []] == ["code"]


async def test_reset_code_dies_after_too_many_wrong_guesses(world: World) -> None:
    user = (await world.service.signup(signup_request())).user
    code = await reset_code(world, user.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(SETTINGS.password_reset_max_attempts):
        with pytest.raises(ValidationFailed):
            await world.service.reset_password(
                PasswordResetRequest(email=user.email, code=wrong, new_password="new password"))
    with pytest.raises(ValidationFailed) as dead:
        await world.service.reset_password(
            PasswordResetRequest(email=user.email, code=code, new_password="new password"))
    assert code_of(dead) == "invalid_reset_code"
    # A fresh code works again.
    fresh = await reset_code(world, user.email)
    await world.service.reset_password(
        PasswordResetRequest(email=user.email, code=fresh, new_password="new password"))


async def test_reset_code_expires_and_unknown_email_is_refused(world: World) -> None:
    user = (await world.service.signup(signup_request())).user
    code = await reset_code(world, user.email)
    world.clock.advance(SETTINGS.password_reset_ttl)
    with pytest.raises(ValidationFailed) as expired:
        await world.service.reset_password(
            PasswordResetRequest(email=user.email, code=code, new_password="new password"))
    assert code_of(expired) == "invalid_reset_code"
    with pytest.raises(ValidationFailed) as unknown:
        await world.service.reset_password(
            PasswordResetRequest(email="ghost@example.com", code=code,
                                 new_password="new password"))
    assert code_of(unknown) == "invalid_reset_code"


async def test_a_new_code_replaces_the_old_one(world: World) -> None:
    user = (await world.service.signup(signup_request())).user
    old = await reset_code(world, user.email)
    new = await reset_code(world, user.email)
    if old != new:  # one in a million they coincide
        with pytest.raises(ValidationFailed):
            await world.service.reset_password(
                PasswordResetRequest(email=user.email, code=old, new_password="new password"))
    await world.service.reset_password(
        PasswordResetRequest(email=user.email, code=new, new_password="new password"))


async def test_me_returns_the_account_or_refuses_a_vanished_one(world: World) -> None:
    session = await world.service.signup(signup_request())
    principal = world.codec.verify(session.access_token)
    assert (await world.service.me(principal)).id == session.user.id
    del world.accounts.users[session.user.id]
    with pytest.raises(Unauthorized) as gone:
        await world.service.me(principal)
    assert code_of(gone) == "invalid_token"


async def test_a_failing_mailer_does_not_leak_through_forgot(world: World) -> None:
    user = (await world.service.signup(signup_request())).user
    world.mailer.failing = True
    await world.service.forgot_password(user.email)  # still "accepted", like any address
    assert user.id in world.resets.rows


async def test_reset_revokes_every_access_token_at_once_and_closes_sockets(
        world: World) -> None:
    session = await world.service.signup(signup_request("ivy"))
    other = await world.service.login(LoginRequest(identifier="ivy", password="correct horse"))
    bystander = await world.service.signup(signup_request("jack"))
    world.clock.advance(0.4)  # the reset comes in the same second as the tokens
    code = await reset_code(world, session.user.email)
    await world.service.reset_password(PasswordResetRequest(
        email=session.user.email, code=code, new_password="battery staple"))

    for old in (session.access_token, other.access_token):
        world.codec.verify(old)  # still well-formed and unexpired...
        with pytest.raises(Unauthorized) as revoked:  # ...but revoked
            await world.authenticator.check(old)
        assert code_of(revoked) == "token_revoked"
    assert world.closed_sockets == [session.user.id]
    assert (await world.authenticator.check(bystander.access_token)).user_id == (
        bystander.user.id)
    # Logging in again works at once, in that same second.
    again = await world.service.login(LoginRequest(identifier="ivy", password="battery staple"))
    assert (await world.authenticator.check(again.access_token)).user_id == session.user.id


async def test_logout_all_revokes_refresh_and_access_tokens_every_time(world: World) -> None:
    session = await world.service.signup(signup_request("kim"))
    principal = await world.authenticator.check(session.access_token)
    await world.service.logout_all(principal)
    assert world.tokens.live(session.user.id) == []
    with pytest.raises(Unauthorized) as revoked:
        await world.authenticator.check(session.access_token)
    assert code_of(revoked) == "token_revoked"
    with pytest.raises(Unauthorized):
        await world.service.refresh(session.refresh_token)
    assert world.closed_sockets == [session.user.id]

    # A token issued after the first sign-out (same second) works, and the next sign-out,
    # again in that second, stops it.
    second = await world.service.login(LoginRequest(identifier="kim", password="correct horse"))
    second_principal = await world.authenticator.check(second.access_token)
    rotated = await world.service.refresh(second.refresh_token)
    await world.authenticator.check(rotated.access_token)
    await world.service.logout_all(second_principal)
    for token in (second.access_token, rotated.access_token):
        with pytest.raises(Unauthorized):
            await world.authenticator.check(token)
    third = await world.service.login(LoginRequest(identifier="kim", password="correct horse"))
    assert (await world.authenticator.check(third.access_token)).user_id == session.user.id


async def test_a_failing_socket_close_does_not_undo_the_sign_out(world: World) -> None:
    session = await world.service.signup(signup_request())

    async def broken(user_id: str) -> None:
        raise RuntimeError("session records unreachable")

    world.service._close_sockets = broken
    await world.service.logout_all(await world.authenticator.check(session.access_token))
    with pytest.raises(Unauthorized):
        await world.authenticator.check(session.access_token)


async def test_logout_of_one_session_leaves_access_tokens_to_their_ttl(world: World) -> None:
    session = await world.service.signup(signup_request())
    await world.service.logout(session.refresh_token)
    assert (await world.authenticator.check(session.access_token)).user_id == session.user.id
    assert world.closed_sockets == []


async def test_login_signup_and_refresh_leave_the_watermark_cached(world: World) -> None:
    """The socket connect that follows a login finds the watermark without Postgres."""
    store = FakeTokenWatermarks()
    cache = MemoryWatermarkCache()
    watermarks = TokenWatermarks(store, cache, clock=world.clock)
    service = AuthService(accounts=world.accounts, refresh_tokens=FakeRefreshTokens(store),
                          resets=world.resets, mailer=world.mailer, tokens=world.codec,
                          watermarks=watermarks, passwords=Passwords(CHEAP), settings=SETTINGS,
                          clock=world.clock)
    session = await service.signup(signup_request())
    assert await cache.get(session.user.id) == 0
    await cache.raise_to(session.user.id, 5)  # a sign-out's raise is never lowered
    await service.login(LoginRequest(identifier=session.user.username, password="correct horse"))
    await service.refresh(session.refresh_token)
    assert await cache.get(session.user.id) == 5
