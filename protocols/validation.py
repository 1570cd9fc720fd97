"""Why a value does not fit an inbound shape: every invalid field at once, in words.

msgspec stops at the first problem and speaks in types and regexes ("Expected `str`
matching regex '^[A-Za-z0-9_]+$'"). An edge calls `explain()` once a decode has failed (the
fast path stays msgspec's own): it checks each field of the Struct on its own, so one answer
names every invalid field, and says what is wrong as a person would ("must be at least 3
characters", or the `message` a pattern carries in `Meta.extra`, see protocols.fields).

    try:
        body = decoder.decode(raw)
    except msgspec.ValidationError:
        errors = explain(msgspec.json.decode(raw), Body)   # [FieldError(field, message)]

Field names are the JSON names with a path below the top level: `media_ids[2]`, `payload`;
`$` is the value as a whole (not an object, or a rule across fields).
"""

from __future__ import annotations

import functools
import re
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi

from protocols.problems import FieldError

WHOLE = "$"
_MAX_FIELDS_LISTED = 12
_AT = re.compile(r" - at `\$(?P<path>.*)`$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<name>.*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>.*)`$", re.DOTALL)
_EXPECTED = re.compile(r"^Expected `(?P<types>[^`]+)`(?:, got `(?P<got>[^`]+)`)?(?P<rest>.*)$",
                       re.DOTALL)
_LENGTH = re.compile(r"^ of length (?P<op>[<>]=?) (?P<n>\d+)$")
_BOUND = re.compile(r"^ (?P<op>[<>]=?) (?P<n>\S+)$")
_TYPE_WORDS = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "null": "null", "array": "a list", "object": "an object", "datetime": "an RFC 3339 time",
    "date": "a date (YYYY-MM-DD)", "time": "a time", "uuid": "a UUID", "bytes": "base64 text",
}
_UNITS = {"str": "character", "array": "item", "object": "entry", "bytes": "byte"}
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}
_TIME_MESSAGE = "must be an RFC 3339 time with an offset, e.g. 2026-01-31T09:30:00Z"


def explain(data: Any, struct: type[msgspec.Struct], *, strict: bool = True) -> list[FieldError]:
    """Every reason `data` (JSON-like builtins: what msgspec.json.decode returns, or a query
    string as a dict of str) does not convert to `struct`; [] when it does. `strict` as in
    msgspec.convert (False: query strings, where "3" is an int)."""
    info = _struct_info(struct)
    if not isinstance(data, dict):
        return [FieldError(field=WHOLE, message="must be a JSON object")]
    errors: list[FieldError] = []
    known = {field.encode_name: field for field in info.fields}
    for field in info.fields:
        if field.encode_name not in data:
            if field.required:
                errors.append(FieldError(field=field.encode_name, message="is required"))
            continue
        try:
            msgspec.convert({field.encode_name: data[field.encode_name]},
                            _checker(struct, field.name), strict=strict)
        except msgspec.ValidationError as exc:
            errors.append(describe(exc, struct))
    if info.forbid_unknown_fields:
        allowed = ", ".join(list(known)[:_MAX_FIELDS_LISTED])
        errors += [FieldError(field=_name(key), message=f"is not a known field (known: {allowed})")
                   for key in data if key not in known]
    if not errors:  # each field fits: what is left is a rule across fields (__post_init__)
        try:
            msgspec.convert(data, struct, strict=strict)
        except msgspec.ValidationError as exc:
            errors.append(describe(exc, struct))
    return errors


def describe(exc: msgspec.ValidationError, struct: type[msgspec.Struct]) -> FieldError:
    """One msgspec error as a FieldError: the field it is at, and what is wrong in words."""
    text = str(exc)
    at = _AT.search(text)
    path = at.group("path") if at else ""
    raw = text[:at.start()] if at else text
    if (match := _MISSING.match(raw)) is not None:
        return FieldError(field=_join(path, match.group("name")), message="is required")
    if (match := _UNKNOWN.match(raw)) is not None:
        return FieldError(field=_join(path, match.group("name")),
                          message="is not a known field")
    node, extra = _node_at(_struct_info(struct), path)
    return FieldError(field=_join(path, ""), message=_humanize(raw, node, extra))


def summary(errors: list[FieldError]) -> str:
    """The errors as one line: "text: must not be empty; client_id: is required"."""
    return "; ".join(f"{error.field}: {error.message}" for error in errors)


# -- internals ----------------------------------------------------------------------------


@functools.cache
def _struct_info(struct: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(struct)
    if not isinstance(info, mi.StructType):
        raise TypeError(f"{struct!r} is not a Struct")
    return info


@functools.cache
def _checker(struct: type[msgspec.Struct], name: str) -> type[msgspec.Struct]:
    """A Struct holding only field `name` of `struct` (same type, same constraints)."""
    hints = typing.get_type_hints(struct, include_extras=True)
    encode_name = struct.__struct_encode_fields__[struct.__struct_fields__.index(name)]
    return msgspec.defstruct(f"{struct.__name__}_{name}", [(name, hints[name])],
                             rename={name: encode_name})


def _name(key: Any) -> str:
    return str(key)[:100] or '""'


def _join(path: str, name: str) -> str:
    """`$`-relative msgspec path plus a field name -> `a[0].b`; `$` when both are empty."""
    full = path.lstrip(".")
    if name:
        full = f"{full}.{name}" if full else name
    return _name(full) if full else WHOLE


def _unwrap(node: Any, extra: dict[str, Any]) -> Any:
    """Peel Metadata (keeping its `extra`) and optional unions down to the one type inside."""
    while True:
        if isinstance(node, mi.Metadata):
            extra.update(node.extra or {})
            node = node.type
        elif isinstance(node, mi.UnionType):
            inner = [t for t in node.types if not isinstance(t, mi.NoneType)]
            if len(inner) != 1:
                return node
            node = inner[0]
        else:
            return node


def _node_at(root: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """The type (and the Meta.extra on it) at a msgspec error path such as `.a[0]`."""
    node = root
    for name, index in _SEGMENT.findall(path):
        node = _unwrap(node, {})
        if name and isinstance(node, mi.StructType):
            found = [f.type for f in node.fields if f.encode_name == name]
            node = found[0] if found else None
        elif index == "..." and isinstance(node, mi.DictType):
            node = node.value_type
        elif index and isinstance(node, mi.ListType | mi.SetType | mi.VarTupleType
                                  | mi.FrozenSetType):
            node = node.item_type
        else:
            node = None
        if node is None:
            return None, {}
    extra: dict[str, Any] = {}
    return _unwrap(node, extra), extra


def _humanize(raw: str, node: Any, extra: dict[str, Any]) -> str:
    if raw.startswith("Invalid enum value"):
        values = _literal_values(node)
        return f"must be one of: {', '.join(values)}" if values else \
            "is not one of the allowed values"
    if raw.startswith("Invalid RFC3339") or "timezone component" in raw:
        return _TIME_MESSAGE
    match = _EXPECTED.match(raw)
    if match is None:
        return raw  # our own words (a __post_init__ rule) or a form we do not know
    types, got, rest = match.group("types"), match.group("got"), match.group("rest")
    if got is not None:
        if types == "datetime" or "datetime" in types.split(" | "):
            return _TIME_MESSAGE
        return f"must be {_type_words(types)}"
    if rest.startswith(" matching regex"):
        return extra.get("message") or "has characters or a format that is not allowed"
    if (length := _LENGTH.match(rest)) is not None:
        n = int(length.group("n"))
        unit = _UNITS.get(types, "item")
        if length.group("op") == ">=" and n == 1:
            return "must not be empty"
        return f"must have {_BOUND_WORDS[length.group('op')]} {n} {unit}{'s' if n != 1 else ''}"
    if (bound := _BOUND.match(rest)) is not None:
        number = bound.group("n").removesuffix(".0")
        return f"must be {_BOUND_WORDS[bound.group('op')]} {number}"
    return raw


def _type_words(types: str) -> str:
    """`int | null` -> "an integer": null only ever stands for "absent" in our shapes."""
    names = [t for t in types.split(" | ") if t != "null"] or ["null"]
    return " or ".join(dict.fromkeys(_TYPE_WORDS.get(t, f"`{t}`") for t in names))


def _literal_values(node: Any) -> list[str]:
    candidates = node.types if isinstance(node, mi.UnionType) else (node,)
    return [str(value) for candidate in candidates if isinstance(candidate, mi.LiteralType)
            for value in candidate.values]
