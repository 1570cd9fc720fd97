"""The AsyncAPI document of the Socket.IO gateway (server/openapi/asyncapi.py).

It is validated against the official AsyncAPI 3.0.0 JSON Schema, vendored unchanged from the
npm package @asyncapi/specs 6.11.1 (`schemas/3.0.0.json`, Apache-2.0, its LICENSE beside it) in
tests/unit/asyncapi_spec/, with the `jsonschema` package (pinned in the `test` extra).
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from protocols import socket
from protocols.socket import AckError, AckOk
from server.gateway import session
from server.gateway.namespace import ROUTES
from server.openapi.asyncapi import (
    ACKS,
    ConnectRefusal,
    build_asyncapi,
    gateway_error_codes,
    server_events,
)
from tests.support.json_refs import lookup, refs

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).resolve().parent / "asyncapi_spec" / "3.0.0.json"
COMPONENT_KEY = re.compile(r"^[\w\d.\-_]+$")  # AsyncAPI 3.0 component and operation keys
# Broadcaster / SessionEmitter calls (actors.ports) and the actors' own emit helpers: every
# string literal passed to one of them is a Socket.IO event name.
EMITTERS = {"to_room", "to_user", "to_watchers", "to_session", "to_user_except", "emit",
            "_emit", "_emit_user", "_to_joined"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Through JSON, exactly as served.
    return msgspec.json.decode(msgspec.json.encode(build_asyncapi()))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SPEC.read_text(encoding="utf-8"))
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    return jsonschema.Draft7Validator(schema)


def operations(document: dict[str, Any], action: str) -> dict[str, dict[str, Any]]:
    """Event name -> operation, for one action."""
    return {op["title"]: op for op in document["operations"].values() if op["action"] == action}


def message_of(document: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    channel_message = lookup(document, ref["$ref"])
    return lookup(document, channel_message["$ref"])


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any],
                                          validator: jsonschema.Draft7Validator) -> None:
    assert document["asyncapi"] == "3.0.0"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in validator.iter_errors(document)]
    assert not errors, errors


def test_the_validator_rejects_a_broken_document(document: dict[str, Any],
                                                 validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(document)
    broken["operations"]["send.room.join"]["action"] = "publish"  # AsyncAPI 2's word
    assert not validator.is_valid(broken)
    del broken["info"]
    assert not validator.is_valid(broken)


def test_every_ref_resolves_and_keys_are_valid(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    for ref in found:
        assert lookup(document, ref) is not None, ref
    components = document["components"]
    for key in [*components["schemas"], *components["messages"], *document["operations"]]:
        assert COMPONENT_KEY.match(key), key
    # Operations name only messages of their channel (AsyncAPI 3.0, Operation Object).
    channel = document["channels"]["socketio"]
    assert channel["address"] == "/socket.io/"
    for key, operation in document["operations"].items():
        assert operation["channel"] == {"$ref": "#/channels/socketio"}, key
        listed = [*operation["messages"], *operation.get("reply", {}).get("messages", [])]
        for ref in listed:
            assert ref["$ref"].startswith("#/channels/socketio/messages/"), key


def test_it_lists_exactly_every_client_event_with_its_payload(
        document: dict[str, Any]) -> None:
    sent = operations(document, "send")
    assert set(sent) == {"connect", *socket.CLIENT_EVENTS}
    for event, struct in socket.CLIENT_EVENTS.items():
        (ref,) = sent[event]["messages"]
        message = message_of(document, ref)
        assert message["name"] == event
        assert message["payload"] == {"$ref": f"#/components/schemas/{struct.__name__}"}
        schema = document["components"]["schemas"][struct.__name__]
        assert schema["additionalProperties"] is False  # unknown fields are refused


def test_it_lists_exactly_every_server_event_with_its_payload(
        document: dict[str, Any]) -> None:
    received = operations(document, "receive")
    assert set(received) == set(socket.SERVER_EVENTS) | {"notification", "feed:new"}
    for event, struct in server_events().items():
        (ref,) = received[event]["messages"]
        message = message_of(document, ref)
        assert message["name"] == event
        assert message["payload"] == {"$ref": f"#/components/schemas/{struct.__name__}"}
        assert "reply" not in received[event]


def emitted_events() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for root in ("actors", "server"):
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in EMITTERS):
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            where = f"{path.relative_to(ROOT)}:{node.lineno}"
                            found.setdefault(arg.value, []).append(where)
    return found


def test_every_event_the_server_emits_is_documented(document: dict[str, Any]) -> None:
    emitted = emitted_events()
    assert {"message:new", "presence", "notification", "call:incoming"} <= set(emitted)
    received = operations(document, "receive")
    missing = {event: where for event, where in emitted.items() if event not in received}
    assert not missing, f"emitted but not in SERVER_EVENTS: {missing}"


def test_every_client_event_declares_its_ack() -> None:
    assert set(ACKS) == set(socket.CLIENT_EVENTS), "add the new event's ack to ACKS"
    assert set(ROUTES) == set(socket.CLIENT_EVENTS)
    for event, ack in ACKS.items():
        assert msgspec.structs.fields(ack)[0].name == "ok", event
        # The handler builds that ack (or the bare {ok: true} when the ack is AckOk).
        source = inspect.getsource(ROUTES[event])
        named = {name for name in re.findall(r"\b([A-Z]\w*Ack)\(", source)}
        assert named == (set() if ack is AckOk else {ack.__name__}), (event, named)


def test_each_ack_is_a_reply_ok_or_error(document: dict[str, Any]) -> None:
    sent = operations(document, "send")
    for event, ack in ACKS.items():
        ok, error = (message_of(document, ref) for ref in sent[event]["reply"]["messages"])
        assert ok["payload"] == {"$ref": f"#/components/schemas/{ack.__name__}"}
        assert error["payload"] == {"$ref": f"#/components/schemas/{AckError.__name__}"}
        schema = document["components"]["schemas"][ack.__name__]
        assert schema["properties"]["ok"]["enum"] == [True]
    error_schema = document["components"]["schemas"]["AckError"]
    assert error_schema["properties"]["ok"]["enum"] == [False]
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"code", "message"} and "retry_after" in body["properties"]


def test_the_error_ack_names_every_gateway_error_code(document: dict[str, Any]) -> None:
    constants = {value for name, value in vars(socket).items()
                 if name.isupper() and isinstance(value, str)}
    codes = gateway_error_codes()
    assert set(codes) == constants
    assert {"invalid", "rate_limited", "too_large", "internal"} <= set(codes)
    assert all(codes.values()), "each code's comment in protocols/socket.py is its meaning"
    description = document["components"]["messages"]["ack.error"]["description"]
    for code, meaning in codes.items():
        assert f"- `{code}`: {meaning}" in description


def test_connect_takes_a_token_and_is_refused_with_a_code(document: dict[str, Any]) -> None:
    connect = document["operations"]["connect"]
    auth = message_of(document, connect["messages"][0])
    assert auth["name"] == "connect"
    schema = document["components"]["schemas"]["ConnectAuth"]
    assert schema["required"] == ["token"]
    (refusal_ref,) = connect["reply"]["messages"]
    assert message_of(document, refusal_ref)["name"] == "connect_error"
    refusal = document["components"]["schemas"][ConnectRefusal.__name__]
    codes = set(refusal["properties"]["code"]["enum"])
    assert codes == {socket.UNAUTHORIZED, socket.UNAVAILABLE}
    # Every code server/gateway/session.py refuses a connection with.
    tree = ast.parse(inspect.getsource(session))
    refused = {node.values[0].value for node in ast.walk(tree)
               if isinstance(node, ast.Dict) and len(node.keys) == 1
               and isinstance(node.keys[0], ast.Constant) and node.keys[0].value == "code"
               and isinstance(node.values[0], ast.Constant)}
    assert refused and refused <= codes
    binding = document["channels"]["socketio"]["bindings"]["ws"]
    assert binding["method"] == "GET" and binding["query"]["properties"]["EIO"]["enum"] == ["4"]


def test_payload_schemas_are_msgspecs(document: dict[str, Any]) -> None:
    """No hand-written payload schema: each equals msgspec's for its Struct."""
    structs = [*socket.CLIENT_EVENTS.values(), *server_events().values(), *ACKS.values()]
    _, expected = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}")
    for name, schema in expected.items():
        assert document["components"]["schemas"][name] == schema, name


def test_a_new_client_event_appears_and_fails_the_ack_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Wave(socket.ClientEvent):
        """`wave` -> AckOk."""

        room_id: socket.EntityId

    monkeypatch.setattr(socket, "CLIENT_EVENTS", {**socket.CLIENT_EVENTS, "wave": Wave})
    document = build_asyncapi()
    assert document["operations"]["send.wave"]["title"] == "wave"
    with pytest.raises(AssertionError, match="ACKS"):
        test_every_client_event_declares_its_ack()
