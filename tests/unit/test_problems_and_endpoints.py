"""Problem details and typed-endpoint decoding, without a server."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from protocols.base import Inbound
from server.http.endpoint import field_errors
from server.http.problems import Conflict, RateLimited, Unauthorized, ValidationFailed


class Sample(Inbound):
    name: Annotated[str, msgspec.Meta(min_length=3)]
    age: int = 0


def _validation_error(raw: bytes) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(raw, type=Sample)
    return info.value


def test_field_errors_name_the_field() -> None:
    [error] = field_errors(_validation_error(b'{"name": "ab"}'))
    assert error.field == "name" and "length >= 3" in error.message


def test_missing_and_unknown_fields_are_reported() -> None:
    [missing] = field_errors(_validation_error(b'{"age": 3}'))
    assert "name" in missing.message
    [unknown] = field_errors(_validation_error(b'{"name": "abc", "nope": 1}'))
    assert "nope" in unknown.message


def test_problem_shape() -> None:
    problem = Conflict("taken", code="username_taken").to_problem("/v1/auth/signup")
    body = msgspec.json.decode(msgspec.json.encode(problem))
    assert body == {
        "type": "urn:hubbub:problem:username_taken", "title": "Conflict", "status": 409,
        "code": "username_taken", "detail": "taken", "instance": "/v1/auth/signup",
    }


def test_validation_problem_carries_errors() -> None:
    error = ValidationFailed("bad", errors=field_errors(_validation_error(b'{"name": 1}')))
    body = msgspec.json.decode(msgspec.json.encode(error.to_problem()))
    assert body["status"] == 422 and body["errors"][0]["field"] == "name"


def test_rate_limited_rounds_retry_after_up() -> None:
    error = RateLimited(0.2)
    assert error.headers() == {"Retry-After": "1"}
    assert error.to_problem().retry_after == 1 and error.temporary


def test_unauthorized_challenges_bearer() -> None:
    assert Unauthorized().headers()["WWW-Authenticate"].startswith("Bearer")
