"""Auth request bodies: what decodes and what is a 422 naming the field."""

from __future__ import annotations

import msgspec
import pytest

from protocols.auth import LoginRequest, PasswordResetRequest, SignupRequest
from server.http.endpoint import field_errors

GOOD = {"username": "alice_01", "email": "alice@example.com", "password": "p" * 8}


def _decode(type_: type, body: dict[str, object]) -> object:
    return msgspec.json.decode(msgspec.json.encode(body), type=type_)


def _bad_field(type_: type, body: dict[str, object]) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        _decode(type_, body)
    [error] = field_errors(info.value)
    return error.field


def test_a_good_signup_decodes() -> None:
    signup = _decode(SignupRequest, {**GOOD, "display_name": "Alice Ünïcode 🎉"})
    assert isinstance(signup, SignupRequest) and signup.display_name == "Alice Ünïcode 🎉"
    assert _decode(SignupRequest, GOOD).display_name is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("field", "value"), [
    ("username", "ab"), ("username", "a" * 31), ("username", "bad name"),
    ("username", "alice\n"), ("username", "alïce"), ("username", "a@b"),
    ("email", "not-an-email"), ("email", "a@b"), ("email", "a b@example.com"),
    ("email", "alice@example.com\n"), ("email", "a\x00@example.com"),
    ("email", "a@" + "b" * 250 + ".com"),
    ("password", "short"), ("password", "p" * 257),
    ("display_name", "x" * 51), ("display_name", "nul\x00byte"), ("display_name", "line\n"),
])
def test_bad_signup_fields_are_named(field: str, value: str) -> None:
    assert _bad_field(SignupRequest, {**GOOD, field: value}) == field


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="role"):
        _decode(SignupRequest, {**GOOD, "role": "admin"})
    with pytest.raises(msgspec.ValidationError, match="password"):
        _decode(LoginRequest, {"identifier": "alice"})


def test_login_identifier_is_bounded_and_nul_free() -> None:
    assert _bad_field(LoginRequest, {"identifier": "", "password": "x"}) == "identifier"
    assert _bad_field(LoginRequest, {"identifier": "a\x00", "password": "x"}) == "identifier"
    assert _bad_field(LoginRequest, {"identifier": "a" * 255, "password": "x"}) == "identifier"


@pytest.mark.parametrize("code", ["12345", "1234567", "12345a", "١٢٣٤٥٦", "123456\n"])
def test_reset_code_is_exactly_six_ascii_digits(code: str) -> None:
    body = {"email": "a@example.com", "code": code, "new_password": "p" * 8}
    assert _bad_field(PasswordResetRequest, body) == "code"
    assert _decode(PasswordResetRequest, {**body, "code": "012345"})
