"""Opaque cursors: round trips, and every kind of tampering is a 400 `invalid_cursor`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from protocols.ids import new_id
from server.http.cursors import TimeIdKey, decode_cursor, encode_cursor
from server.http.problems import BadRequest


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_keeps_microseconds_and_is_url_safe() -> None:
    key = (datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), new_id())
    cursor = encode_cursor(key)
    assert decode_cursor(cursor, TimeIdKey) == key
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_other_key_shapes() -> None:
    assert decode_cursor(encode_cursor((5, "x")), tuple[int, str]) == (5, "x")


@pytest.mark.parametrize("cursor", [
    "",  # nothing
    "%%%",  # not base64
    "\u00e9\u00e9\u00e9\u00e9",  # not ASCII
    _b64(b"not json"),
    _b64(b"{}"),  # not an array
    _b64(b'["2024-01-01T00:00:00Z"]'),  # too short
    _b64(b'["2024-01-01T00:00:00Z", "0190f000-0000-7000-8000-000000000000", 1]'),  # too long
    _b64(b'["yesterday", "0190f000-0000-7000-8000-000000000000"]'),  # bad time
    _b64(b'["2024-01-01T00:00:00", "0190f000-0000-7000-8000-000000000000"]'),  # no zone
    _b64(b'["2024-01-01T00:00:00Z", "not-a-uuid"]'),  # an id a database would choke on
    _b64(b'["2024-01-01T00:00:00Z", "0190F000-0000-7000-8000-000000000000"]'),  # not ours
    _b64(b'["2024-01-01T00:00:00Z", "0190f000-0000-7000-8000-000000000000\\n"]'),
    "A" * 10_000,  # absurdly long
])
def test_tampered_cursors_are_invalid_cursor(cursor: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_cursor(cursor, TimeIdKey)
    assert info.value.code == "invalid_cursor" and info.value.status == 400
