"""Opaque page cursors: base64url (unpadded) of a small msgspec JSON array.

    cursor = encode_cursor((followed_at, user_id))
    key = decode_cursor(query.cursor, TimeIdKey)   # BadRequest `invalid_cursor` if tampered

Cursors are not signed: they only say where a page starts, and every value in one is
validated against the key's type before it reaches a query, so a forged cursor can at worst
start a page somewhere else. Anything that does not decode to the expected shape is a 400.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec

from server.http.problems import BadRequest

T = TypeVar("T")

# `$(?!\n)`: Python's `$` also matches before a trailing newline, which Postgres would refuse.
_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$(?!\n)"
# Cursors we hand out are small; anything much larger was not made by us.
_MAX_CURSOR_CHARS = 512

CursorId = Annotated[str, msgspec.Meta(pattern=_UUID_PATTERN)]
CursorTime = Annotated[datetime, msgspec.Meta(tz=True)]
# The usual keyset for newest-first lists: (created_at, id), both descending.
TimeIdKey = tuple[CursorTime, CursorId]

_encoder = msgspec.json.Encoder()


def encode_cursor(key: tuple[Any, ...]) -> str:
    """The opaque cursor for a keyset (a tuple of JSON-encodable values)."""
    return base64.urlsafe_b64encode(_encoder.encode(key)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, key_type: type[T]) -> T:
    """The keyset inside `cursor`, checked against `key_type` (e.g. TimeIdKey).

    Raises BadRequest with code `invalid_cursor` for anything that is not a cursor of that
    shape: bad base64, bad JSON, wrong arity, wrong types, values out of range.
    """
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=key_type)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        # msgspec.ValidationError is a DecodeError; non-ASCII input is a ValueError.
        raise _invalid() from None


def _invalid() -> BadRequest:
    return BadRequest("The cursor is not one this list handed out", code="invalid_cursor")
