"""An AuthService on in-memory ports and a movable clock, for the auth unit tests."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher, profiles

from protocols.auth import SignupRequest
from server.auth.authenticator import Authenticator
from server.auth.passwords import Passwords
from server.auth.revocation import MemoryWatermarkCache, TokenWatermarks
from server.auth.service import AuthService
from server.auth.tokens import TokenCodec
from server.config import Settings
from server.http.problems import ProblemError
from tests.unit.fakes_auth import (
    FakeAccounts,
    FakeClock,
    FakeMailer,
    FakeRefreshTokens,
    FakeResets,
    FakeTokenWatermarks,
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
    authenticator: Authenticator
    closed_sockets: list[str]


def build_world() -> World:
    """A fresh AuthService on fakes, with a clock the test moves."""
    clock = FakeClock()
    store = FakeTokenWatermarks()
    accounts, tokens, resets, mailer = (FakeAccounts(clock), FakeRefreshTokens(store),
                                        FakeResets(), FakeMailer())
    codec = TokenCodec("s" * 32, issuer="hubbub", audience="hubbub-api", ttl=900, clock=clock)
    watermarks = TokenWatermarks(store, MemoryWatermarkCache(), clock=clock)
    closed: list[str] = []

    async def close_sockets(user_id: str) -> None:
        closed.append(user_id)

    service = AuthService(accounts=accounts, refresh_tokens=tokens, resets=resets,
                          mailer=mailer, tokens=codec, watermarks=watermarks,
                          passwords=Passwords(CHEAP), settings=SETTINGS,
                          close_sockets=close_sockets, clock=clock)
    return World(service, clock, accounts, tokens, resets, mailer, codec,
                 Authenticator(codec, watermarks), closed)


def signup_request(name: str | None = None, **changes: str) -> SignupRequest:
    name = name or f"user_{uuid.uuid4().hex[:8]}"
    fields = {"username": name, "email": f"{name}@example.com", "password": "correct horse"}
    fields.update(changes)
    return SignupRequest(**fields)


async def reset_code(world: World, email: str) -> str:
    await world.service.forgot_password(email)
    to, _, body = world.mailer.sent[-1]
    assert to == email
    match = re.search(r"\b(\d{6})\b", body)
    assert match
    return match.group(1)


def code_of(error: pytest.ExceptionInfo[ProblemError]) -> str:
    return error.value.code
