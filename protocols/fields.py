"""Constrained field types shared by every inbound wire shape (REST bodies and queries,
Socket.IO payloads): text every store can keep, ids, and integers that fit a `bigint`.

Why text needs types of its own: Postgres `text` refuses NUL (U+0000), and text holding one
that reached an actor or the database failed there, on every retry. Every text field of an
`Inbound` shape uses `text()` or `line()` (or a narrower `pattern()`, as usernames do), so a
NUL is refused while decoding: a 422 naming the field on REST, `invalid` on a socket.

Unpaired UTF-16 surrogates (U+D800-U+DFFF: UTF-8 cannot encode them) are the other text no
store can keep. They are not in these patterns, because JSON Schema tools outside Python
(Rust and ECMAScript regex engines) cannot compile such a range; they are refused where they
could get in instead: msgspec's JSON parser refuses a `\ud800` escape (REST bodies, 400),
multipart text fields are decoded as strict UTF-8, and `unpaired_surrogate_at()` guards the
payloads Python's `json` module parsed (Socket.IO; see protocols.socket.decode).

Each pattern carries a `message` (in `Meta.extra`) that protocols.validation shows instead
of the regex when a value does not match.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

INT64_MAX = 2**63 - 1  # Postgres bigint; also the largest seq a room can reach

# The character no stored text may hold.
_UNSTORABLE = r"\x00"
# Single-line text refuses every C0 control character and DEL as well (NUL is one).
_CONTROL = r"\x00-\x1f\x7f"
# `$(?!\n)`: Python's `$` also matches before a trailing newline (a no-op for ECMAScript).
_END = r"$(?!\n)"

TEXT_MESSAGE = "must not contain the NUL character (\\u0000)"
NON_BLANK_MESSAGE = ("must contain a character that is not whitespace, and no NUL "
                     "(\\u0000)")
SURROGATE_MESSAGE = "must not contain unpaired surrogate characters (\\ud800-\\udfff)"
LINE_MESSAGE = "must be one line without control characters (line breaks, tabs, NUL...)"


def text(*, max_length: int, min_length: int = 0, non_blank: bool = False,
         description: str | None = None) -> Any:
    """Free text that may span lines: anything but NUL.
    non_blank: at least one character that is not whitespace."""
    if non_blank:
        pattern = rf"^[^{_UNSTORABLE}]*[^{_UNSTORABLE}\s][^{_UNSTORABLE}]*{_END}"
        message = NON_BLANK_MESSAGE
    else:
        pattern = rf"^[^{_UNSTORABLE}]*{_END}"
        message = TEXT_MESSAGE
    return Annotated[str, msgspec.Meta(
        min_length=min_length or None, max_length=max_length, pattern=pattern,
        description=description, extra={"message": message})]


def line(*, max_length: int, min_length: int = 0, description: str | None = None) -> Any:
    """One line of text (a name, a search term): no control characters at all."""
    return Annotated[str, msgspec.Meta(
        min_length=min_length or None, max_length=max_length,
        pattern=rf"^[^{_CONTROL}]*{_END}", description=description,
        extra={"message": LINE_MESSAGE})]


def pattern(regex: str, message: str, *, min_length: int | None = None,
            max_length: int | None = None, description: str | None = None) -> Any:
    """A string matching `regex`; `message` says what that means to a person ("must be ...").
    The regex must refuse NUL itself."""
    return Annotated[str, msgspec.Meta(
        min_length=min_length, max_length=max_length, pattern=regex, description=description,
        extra={"message": message})]


# A canonical UUID in any case (services lower-case it).
UUID_PATTERN = (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                + _END)
EntityId = pattern(UUID_PATTERN, "must be a UUID such as 0190a0b0-0000-7000-8000-000000000001")

# Chosen by a client, e.g. a message's client_id or an opaque token: printable ASCII.
VISIBLE_ASCII_MESSAGE = "must be printable ASCII without spaces"


def visible_ascii(*, max_length: int, min_length: int = 1,
                  description: str | None = None) -> Any:
    return pattern(r"^[\x21-\x7e]+" + _END, VISIBLE_ASCII_MESSAGE, min_length=min_length,
                   max_length=max_length, description=description)


# Integers that end up in a bigint column or comparison.
Int64 = Annotated[int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]
# A position in a room's message sequence: 0 (before the first message) or a seq.
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
# A message's seq: 1, 2, 3, ...
PositiveSeq = Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]


_SURROGATE = re.compile("[\ud800-\udfff]")


def unpaired_surrogate_at(value: Any, path: str = "") -> str | None:
    """The path (`text`, `payload.sdp`, `user_ids[2]`) of the first string in a parsed JSON
    value, object keys included, that holds an unpaired surrogate; None when there is none."""
    if isinstance(value, str):
        return (path or "$") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return where[:100]
            if (found := unpaired_surrogate_at(item, where)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := unpaired_surrogate_at(item, f"{path}[{index}]")) is not None:
                return found
    return None
