"""AuthService when requests race: a login against a password reset, a refresh against a
sign-out everywhere (at each point of the refresh)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from protocols.auth import LoginRequest, PasswordResetRequest, Rotation
from server.auth.authenticator import Authenticator
from server.auth.passwords import Passwords
from server.auth.revocation import MemoryWatermarkCache, TokenWatermarks
from server.auth.service import AuthService
from server.http.problems import Unauthorized
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


class SlowPasswords(Passwords):
    """Passwords whose verification lets something else happen first (`during`)."""

    def __init__(self) -> None:
        super().__init__(CHEAP)
        self.during: list[Callable[[], Awaitable[None]]] = []

    async def verify(self, stored_hash: str | None, password: str) -> Any:
        while self.during:
            await self.during.pop(0)()
        return await super().verify(stored_hash, password)


async def test_a_login_racing_a_password_reset_starts_no_session(world: World) -> None:
    victim = await world.service.signup(signup_request("lena"))
    code = await reset_code(world, victim.user.email)
    slow = SlowPasswords()
    world.service._passwords = slow

    async def reset_meanwhile() -> None:  # the old hash was read; the owner resets now
        world.clock.advance(0.001)
        await world.service.reset_password(PasswordResetRequest(
            email=victim.user.email, code=code, new_password="battery staple"))

    slow.during.append(reset_meanwhile)
    with pytest.raises(Unauthorized) as refused:  # the old password, checked before the reset
        await world.service.login(LoginRequest(identifier="lena", password="correct horse"))
    assert code_of(refused) == "invalid_credentials"
    assert world.tokens.live(victim.user.id) == []
    world.clock.advance(0.001)
    after = await world.service.login(LoginRequest(identifier="lena", password="battery staple"))
    assert (await world.authenticator.check(after.access_token)).user_id == victim.user.id


class RacingRefreshTokens(FakeRefreshTokens):
    """Runs `after_rotate` once a rotation is done (a sign-out landing right then)."""

    after_rotate: Callable[[], Awaitable[None]] | None = None

    async def rotate(self, **kwargs: Any) -> Rotation:
        rotation = await super().rotate(**kwargs)
        if self.after_rotate is not None:
            hook, self.after_rotate = self.after_rotate, None
            await hook()
        return rotation


class RacingWatermarks(FakeTokenWatermarks):
    """Runs `after_read` once right after a state read (a sign-out landing right then)."""

    after_read: Callable[[], Awaitable[None]] | None = None

    async def state(self, user_id: str) -> tuple[int, datetime | None]:
        state = await super().state(user_id)
        if self.after_read is not None:
            hook, self.after_read = self.after_read, None
            await hook()
        return state


@pytest.mark.parametrize("when", ["after_rotate", "after_read"])
async def test_a_refresh_racing_logout_all_hands_out_nothing_that_lasts(
        world: World, when: str) -> None:
    store = RacingWatermarks()
    tokens = RacingRefreshTokens(store)
    watermarks = TokenWatermarks(store, MemoryWatermarkCache(), clock=world.clock)
    service = AuthService(accounts=world.accounts, refresh_tokens=tokens, resets=world.resets,
                          mailer=world.mailer, tokens=world.codec, watermarks=watermarks,
                          passwords=Passwords(CHEAP), settings=SETTINGS, clock=world.clock)
    authenticator = Authenticator(world.codec, watermarks)
    session = await service.signup(signup_request())
    principal = await authenticator.check(session.access_token)

    async def logout_all() -> None:
        world.clock.advance(0.001)
        await service.logout_all(principal)

    if when == "after_rotate":
        tokens.after_rotate = logout_all
        with pytest.raises(Unauthorized) as refused:
            await service.refresh(session.refresh_token)
        assert code_of(refused) == "invalid_refresh_token"
    else:  # too late to refuse: what it hands out is revoked by the sign-out
        store.after_read = logout_all
        late = await service.refresh(session.refresh_token)
        with pytest.raises(Unauthorized) as revoked:
            await authenticator.check(late.access_token)
        assert code_of(revoked) == "token_revoked"
        with pytest.raises(Unauthorized):
            await service.refresh(late.refresh_token)
    assert tokens.live(session.user.id) == []
