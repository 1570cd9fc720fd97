"""Access JWTs: what verifies, what is refused and with which code; refresh token helpers."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from protocols.ids import is_id
from server.auth.tokens import TokenCodec, hash_refresh_token, new_refresh_token
from server.http.problems import Unauthorized
from tests.unit.fakes_auth import FakeClock

SECRET = "unit-test-secret-" + "x" * 48  # long enough for the HS512 probe too
ISSUER, AUDIENCE, TTL = "hubbub", "hubbub-api", 900
USER_ID = "0190a6c8-1c2b-7c3d-8e4f-5a6b7c8d9e0f"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codec(clock: FakeClock) -> TokenCodec:
    return TokenCodec(SECRET, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)


def _claims(clock: FakeClock, **changes: object) -> dict[str, object]:
    now = int(clock())
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": USER_ID, "role": "user",
        "iat": now, "nbf": now, "exp": now + TTL, "jti": "jti-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _refused(codec: TokenCodec, token: str) -> str:
    with pytest.raises(Unauthorized) as info:
        codec.verify(token)
    return info.value.code


def test_issued_token_verifies_to_its_principal(codec: TokenCodec, clock: FakeClock) -> None:
    token = codec.issue(USER_ID, "moderator")
    principal = codec.verify(token)
    assert (principal.user_id, principal.role) == (USER_ID, "moderator")
    assert principal.expires_at == int(clock()) + TTL and is_id(principal.token_id)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert set(claims) == {"iss", "aud", "sub", "role", "iat", "nbf", "exp", "jti"}
    assert codec.verify(codec.issue(USER_ID, "user")).token_id != principal.token_id


def test_expiry_follows_the_injected_clock(codec: TokenCodec, clock: FakeClock) -> None:
    token = codec.issue(USER_ID, "user")
    clock.advance(TTL - 1)
    assert codec.verify(token).user_id == USER_ID
    clock.advance(1)
    assert _refused(codec, token) == "token_expired"


def test_not_yet_valid_beyond_the_skew_allowance(codec: TokenCodec, clock: FakeClock) -> None:
    skewed = jwt.encode(_claims(clock, nbf=int(clock()) + 20), SECRET, algorithm="HS256")
    assert codec.verify(skewed).user_id == USER_ID
    future = jwt.encode(_claims(clock, nbf=int(clock()) + 3600), SECRET, algorithm="HS256")
    assert _refused(codec, future) == "invalid_token"


@pytest.mark.parametrize("changes", [
    {"aud": "someone-else"}, {"iss": "evil"}, {"role": "root"}, {"jti": None},
    {"sub": None}, {"exp": None}, {"exp": "tomorrow"}, {"sub": 42},
], ids=["audience", "issuer", "role", "no-jti", "no-sub", "no-exp", "exp-type", "sub-type"])
def test_wrong_or_missing_claims_are_invalid(
    codec: TokenCodec, clock: FakeClock, changes: dict[str, object]
) -> None:
    token = jwt.encode(_claims(clock, **changes), SECRET, algorithm="HS256")
    assert _refused(codec, token) == "invalid_token"


def test_only_hs256_is_accepted(codec: TokenCodec, clock: FakeClock) -> None:
    hs512 = jwt.encode(_claims(clock), SECRET, algorithm="HS512")
    assert _refused(codec, hs512) == "invalid_token"
    unsigned = jwt.encode(_claims(clock), None, algorithm="none")
    assert _refused(codec, unsigned) == "invalid_token"
    # alg=none spelled by hand, with the signature of a genuine token kept on.
    genuine = codec.issue(USER_ID, "user")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    _, payload, signature = genuine.split(".")
    assert _refused(codec, f"{header.decode().rstrip('=')}.{payload}.{signature}") == (
        "invalid_token")


def test_tampering_and_other_secrets_are_refused(codec: TokenCodec, clock: FakeClock) -> None:
    header, _, signature = codec.issue(USER_ID, "user").split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps(_claims(clock, role="admin")).encode()).decode().rstrip("=")
    assert _refused(codec, f"{header}.{forged}.{signature}") == "invalid_token"
    other = jwt.encode(_claims(clock), "another-secret-" + "y" * 32, algorithm="HS256")
    assert _refused(codec, other) == "invalid_token"


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "\ud800.x.y", "é" * 10])
def test_garbage_is_invalid_not_a_crash(codec: TokenCodec, garbage: str) -> None:
    assert _refused(codec, garbage) == "invalid_token"


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and len(first) >= 43
    assert hash_refresh_token(first) == hash_refresh_token(first)
    assert len(hash_refresh_token(first)) == 32 and hash_refresh_token(first) != first.encode()


def test_a_lifetime_beyond_the_configured_ttl_is_refused(
    codec: TokenCodec, clock: FakeClock
) -> None:
    now = int(clock())
    year = jwt.encode(_claims(clock, exp=now + 365 * 86400), SECRET, algorithm="HS256")
    assert _refused(codec, year) == "invalid_token"
    # Minted under a longer TTL before it was cut: issued a while ago, still unexpired.
    old_ttl = jwt.encode(_claims(clock, iat=now - 600, nbf=now - 600, exp=now + 600), SECRET,
                         algorithm="HS256")
    assert _refused(codec, old_ttl) == "invalid_token"
    exactly = jwt.encode(_claims(clock, iat=now - 600, nbf=now - 600, exp=now + TTL - 600),
                         SECRET, algorithm="HS256")
    assert codec.verify(exactly).expires_at == now + TTL - 600
    shorter = jwt.encode(_claims(clock, exp=now + 60), SECRET, algorithm="HS256")
    assert codec.verify(shorter).user_id == USER_ID


def test_an_issue_time_in_the_future_is_refused(codec: TokenCodec, clock: FakeClock) -> None:
    # Dating iat ahead would stretch the lifetime check: exp - iat <= TTL with a far iat.
    now = int(clock())
    ahead = jwt.encode(_claims(clock, iat=now + 3600, exp=now + 3600 + TTL), SECRET,
                       algorithm="HS256")
    assert _refused(codec, ahead) == "invalid_token"
    skewed = jwt.encode(_claims(clock, iat=now + 20, exp=now + 20 + TTL), SECRET,
                        algorithm="HS256")
    assert codec.verify(skewed).issued_at == now + 20


def test_issue_claims_the_given_issue_time(codec: TokenCodec, clock: FakeClock) -> None:
    now = int(clock())
    plain = codec.verify(codec.issue(USER_ID, "user"))
    assert plain.issued_at == now and plain.expires_at == now + TTL
    # Lifted to a watermark a moment ahead (a sign-out earlier in this second).
    lifted = codec.issue(USER_ID, "user", issued_at=now + 1)
    claims = jwt.decode(lifted, options={"verify_signature": False})
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now + 1, now, now + 1 + TTL)
    assert codec.verify(lifted).issued_at == now + 1
    # Checked a moment ago (a login's password check): the lifetime counts from then.
    earlier = codec.verify(codec.issue(USER_ID, "user", issued_at=now - 2))
    assert (earlier.issued_at, earlier.expires_at) == (now - 2, now - 2 + TTL)
