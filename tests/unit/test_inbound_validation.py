"""Every inbound wire shape refuses what no store can keep, bounds its integers, and explains
every invalid field at once in words (protocols.fields, protocols.validation; issue 9)."""

from __future__ import annotations

import importlib
import pkgutil
import typing
from collections.abc import Iterator
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

import protocols
from protocols.auth import GivenPassword, Password, SignupRequest
from protocols.base import Inbound
from protocols.chat import HistoryQuery, MessageSend, RoomCreate
from protocols.fields import INT64_MAX, unpaired_surrogate_at
from protocols.posts import PostCreate, PostSearch
from protocols.socket import decode
from protocols.users import ProfilePatch
from protocols.validation import explain
from server.http.cursors import TimeIdKey, decode_cursor
from server.http.endpoint import decode_json
from server.http.problems import BadRequest, ValidationFailed

ROOM = "0190a0b0-0000-7000-8000-000000000001"
# Only ever hashed, never stored or sent on: any characters are fine there.
NEVER_STORED = {Password, GivenPassword}
# Opaque page cursors: server.http.cursors.decode_cursor is their one gate (400
# `invalid_cursor` for anything it did not hand out, NUL included), before any query.
OPAQUE = {"cursor"}


def _inbound_shapes() -> list[type[Inbound]]:
    for module in pkgutil.iter_modules(protocols.__path__):
        importlib.import_module(f"protocols.{module.name}")
    found: list[type[Inbound]] = []
    pending = [Inbound]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return [s for s in found if s.__struct_fields__]


SHAPES = _inbound_shapes()


def _nodes(node: Any) -> Iterator[Any]:
    """Every type node inside a field's type (Metadata kept, so its `extra` can be read)."""
    yield node
    for child in (getattr(node, "type", None), getattr(node, "item_type", None),
                  getattr(node, "value_type", None), getattr(node, "key_type", None),
                  *getattr(node, "types", ())):
        if child is not None and not isinstance(child, type):
            yield from _nodes(child)


def _fields() -> Iterator[tuple[type[Inbound], mi.Field, Any]]:
    for shape in SHAPES:
        hints = typing.get_type_hints(shape, include_extras=True)
        for field in mi.type_info(shape).fields:
            yield shape, field, hints[field.name]


def _text_fields() -> list[Any]:
    """(shape, field name, sample value holding a NUL) for every field that takes text."""
    cases = []
    for shape, field, hint in _fields():
        nodes = list(_nodes(field.type))
        if typing.get_args(hint) and any(hint_part in NEVER_STORED
                                         for hint_part in (hint, *typing.get_args(hint))):
            continue
        if field.encode_name in OPAQUE:
            continue
        if any(isinstance(n, mi.DictType) for n in nodes):
            continue  # relayed as is (call:signal's payload); see test_sockets_refuse...
        if any(isinstance(n, mi.ListType) for n in nodes):
            sample: Any = ["nul\x00byte"]
        elif any(isinstance(n, mi.StrType | mi.LiteralType) for n in nodes):
            sample = "nul\x00byte"
        else:
            continue
        cases.append(pytest.param(shape, field.encode_name, sample,
                                  id=f"{shape.__name__}.{field.encode_name}"))
    return cases


def test_the_audit_sees_the_shapes() -> None:
    names = {shape.__name__ for shape in SHAPES}
    assert {"MessageSend", "RoomCreate", "PostCreate", "ProfilePatch", "SignupRequest",
            "MessageSendEvent", "CallSignal", "HistoryQuery", "PostSearch"} <= names


@pytest.mark.parametrize(("shape", "name", "sample"), _text_fields())
def test_every_text_field_refuses_nul_while_decoding(shape: type[Inbound], name: str,
                                                      sample: Any) -> None:
    fields = [e.field.split("[")[0] for e in explain({name: sample}, shape)]
    assert name in fields, f"{shape.__name__}.{name} took {sample!r}"


def test_every_integer_field_fits_a_bigint() -> None:
    for shape, field, _ in _fields():
        for node in _nodes(field.type):
            if isinstance(node, mi.IntType):
                where = f"{shape.__name__}.{field.name}"
                assert node.le is not None and node.le <= INT64_MAX, where
                assert (node.ge is not None and node.ge >= -INT64_MAX - 1) or \
                    (node.gt is not None and node.gt >= -INT64_MAX - 1), where


def test_every_pattern_says_what_it_means() -> None:
    for shape, field, _ in _fields():
        nodes = list(_nodes(field.type))
        for index, node in enumerate(nodes):
            if isinstance(node, mi.StrType) and node.pattern is not None:
                wrapper = nodes[index - 1] if index else None
                assert isinstance(wrapper, mi.Metadata) and \
                    (wrapper.extra or {}).get("message"), f"{shape.__name__}.{field.name}"


def test_every_invalid_field_is_named_at_once_in_words() -> None:
    errors = explain({"username": "a b", "email": "nope", "password": "short",
                      "display_name": "two\nlines", "role": "admin"}, SignupRequest)
    assert [(e.field, e.message) for e in errors] == [
        ("username", "may hold only letters (A-Z, a-z), digits and underscores"),
        ("email", "must be an email address such as ann@example.com"),
        ("password", "must have at least 8 characters"),
        ("display_name",
         "must be one line without control characters (line breaks, tabs, NUL...)"),
        ("role", "is not a known field (known: username, email, password, display_name)"),
    ]


@pytest.mark.parametrize(("data", "shape", "strict", "expected"), [
    ({}, MessageSend, True, [("text", "is required"), ("client_id", "is required")]),
    ({"text": "", "client_id": "has space"}, MessageSend, True,
     [("text", "must not be empty"), ("client_id", "must be printable ASCII without spaces")]),
    ({"text": " \n "}, PostCreate, True,
     [("text", "must contain a character that is not whitespace, and no NUL (\\u0000)")]),
    ({"text": "x", "media_ids": ["nope"] + [ROOM] * 3}, PostCreate, True,
     [("media_ids[0]", "must be a UUID such as 0190a0b0-0000-7000-8000-000000000001")]),
    ({"text": "x", "media_ids": [ROOM] * 11}, PostCreate, True,
     [("media_ids", "must have at most 10 items")]),
    ({"kind": "party", "member_ids": []}, RoomCreate, True,
     [("kind", "must be one of: direct, group"), ("member_ids", "must not be empty")]),
    ({"after_seq": str(2**63), "before_seq": "0", "limit": "x"}, HistoryQuery, False,
     [("before_seq", "must be at least 1"), ("after_seq", "must be at most 9223372036854775807"),
      ("limit", "must be an integer")]),
    ({"since": "yesterday", "has_media": "maybe"}, PostSearch, False,
     [("since", "must be an RFC 3339 time with an offset, e.g. 2026-01-31T09:30:00Z"),
      ("has_media", "must be true or false")]),
    ({}, ProfilePatch, True,
     [("$", "Send at least one of: display_name, bio, avatar_media_id")]),
    (["not", "an", "object"], MessageSend, True, [("$", "must be a JSON object")]),
])
def test_messages_a_person_can_read(data: Any, shape: type[Inbound], strict: bool,
                                    expected: list[tuple[str, str]]) -> None:
    assert [(e.field, e.message) for e in explain(data, shape, strict=strict)] == expected


def test_valid_data_has_nothing_to_explain() -> None:
    assert explain({"text": "hi 🎉", "client_id": "c-1"}, MessageSend) == []


_message_decoder = msgspec.json.Decoder(MessageSend)


@pytest.mark.parametrize("raw", [
    b'{"text": "\xed\xa0\x80", "client_id": "c"}',  # a surrogate spelled in UTF-8
    b'{"text": "\xff", "client_id": "c"}',  # not UTF-8 at all
    b'{"text": "\\ud800", "client_id": "c"}',  # an unpaired escape
    b'{"text": 1, "client_id": ',  # a bad field, then broken JSON
])
def test_rest_bodies_that_are_not_json_text_are_400(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_json(raw, _message_decoder, MessageSend)


def test_rest_bodies_name_every_invalid_field() -> None:
    with pytest.raises(ValidationFailed) as failed:
        decode_json(b'{"text": "a\\u0000b", "client_id": "", "x": 1}', _message_decoder,
                    MessageSend)
    assert [e.field for e in failed.value.errors or []] == ["text", "client_id", "x"]
    assert failed.value.detail == "The body is invalid: text, client_id, x"


@pytest.mark.parametrize(("event", "payload"), [
    ("message:send", {"room_id": ROOM, "client_id": "c", "text": "a\x00b"}),
    ("message:send", {"room_id": ROOM, "client_id": "c", "text": "a\ud800b"}),
    ("call:signal", {"call_id": ROOM, "to_user_id": ROOM, "kind": "ice",
                     "payload": {"candidate": ["x", "\udc00"]}}),
    ("call:signal", {"call_id": ROOM, "to_user_id": ROOM, "kind": "ice",
                     "payload": {"\ud800": 1}}),
    ("auth:refresh", {"token": "t\x00"}),
    ("room:join", {"room_id": ROOM, "since_seq": 2**63}),
    ("message:read", {"room_id": ROOM, "seq": 2**64}),
])
def test_sockets_refuse_unstorable_text_and_huge_integers(event: str,
                                                          payload: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(event, (payload,))


def test_socket_errors_name_every_field() -> None:
    with pytest.raises(msgspec.ValidationError) as failed:
        decode("message:send", ({"room_id": "nope", "text": ""},))
    assert str(failed.value) == (
        "room_id: must be a UUID such as 0190a0b0-0000-7000-8000-000000000001; "
        "client_id: is required; text: must not be empty")


@pytest.mark.parametrize("cursor", ["a\x00b", "\ud800", "\ufffd", "x" * 600])
def test_opaque_cursors_are_refused_by_their_own_gate(cursor: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_cursor(cursor, TimeIdKey)
    assert refused.value.code == "invalid_cursor"


def test_unpaired_surrogates_are_found_anywhere() -> None:
    assert unpaired_surrogate_at({"a": [{"b": "ok"}, {"c": "x\udfff"}]}) == "a[1].c"
    assert unpaired_surrogate_at({"ok": "emoji 🎉 are pairs"}) is None
    assert unpaired_surrogate_at("\ud800") == "$"
