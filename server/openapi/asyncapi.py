"""Build the AsyncAPI 3.0 document of the Socket.IO gateway (namespace `/`).

Written from a client's side: each `send` operation is an event a client emits
(protocols.socket.CLIENT_EVENTS), its ack modelled as the operation's `reply`; each `receive`
operation is an event the server pushes (protocols.socket.SERVER_EVENTS and the two pushed by
the user actor, `notification` and `feed:new`). There is one channel, the Socket.IO
connection at /socket.io/ over WebSocket, and a `connect` operation for its handshake
(`auth: {token}`, refused with `connect_error`). A reply names no channel: it comes back on
the operation's own, as Socket.IO's ACK packet for the event's packet id (a reply channel that
lists every message of the connection also makes the AsyncAPI viewer render it once per
operation, which takes minutes). Payload schemas are msgspec's JSON Schema of
the Structs, shared under `components/schemas` as in the OpenAPI document.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from protocols import socket
from protocols.base import Inbound, Outbound
from protocols.calls import CallInviteAck
from server import __version__

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "socketio"
SOCKET_PATH = "/socket.io/"
JSON = "application/json"
REF_PREFIX = "#/components/schemas/"
Wire = type[msgspec.Struct]

# The `{ok: true, ...}` ack of each client event (what server/gateway's handler returns). An
# event missing here is documented with the bare AckOk, and tests/unit/test_asyncapi.py fails.
ACKS: Mapping[str, Wire] = MappingProxyType({
    "room:join": socket.JoinAck,
    "room:leave": socket.AckOk,
    "message:send": socket.SendAck,
    "typing": socket.AckOk,
    "message:read": socket.AckOk,
    "presence:set": socket.PresenceSetAck,
    "presence:subscribe": socket.PresenceAck,
    "auth:refresh": socket.RefreshAck,
    "call:invite": CallInviteAck,
    "call:accept": socket.AckOk,
    "call:reject": socket.AckOk,
    "call:hangup": socket.AckOk,
    "call:signal": socket.AckOk,
})

class ConnectAuth(Inbound):
    """The `auth` object of the Socket.IO connect (socket.io-client: `io(url, {auth:
    {token}})`): an access token from POST /v1/auth/login. The connection lives until that
    token expires unless `auth:refresh` extends it."""

    token: socket.AccessToken


class ConnectRefusal(Outbound):
    """`connect_error` data: `unauthorized` (no, bad, expired or revoked token) or
    `unavailable` (the session could not be recorded or the server is stopping: retry)."""

    code: Literal["unauthorized", "unavailable"]


class ConnectError(Outbound):
    """`connect_error` (Socket.IO CONNECT_ERROR): the connection is refused; socket.io-client
    raises an Error with this `message` and `data`."""

    message: str
    data: ConnectRefusal


class Handshake(msgspec.Struct, frozen=True):
    """The Engine.IO query string of the connection URL (socket.io-client sets it)."""

    EIO: Literal["4"]
    transport: Literal["websocket", "polling"]


# `NAME = "code"  # meaning` lines of protocols/socket.py: the gateway's ack error codes.
_CODE_LINE = re.compile(r'^[A-Z][A-Z0-9_]* = "(?P<code>[a-z_]+)"(?:[ \t]*#[ \t]*(?P<meaning>.*))?$',
                        re.MULTILINE)
_CODE = re.compile(r"[a-z][a-z_]*")


def server_events() -> dict[str, Wire]:
    """Every event the server pushes, with its payload Struct."""
    return dict(socket.SERVER_EVENTS)


def gateway_error_codes() -> dict[str, str]:
    """The ack error codes protocols/socket.py defines (its upper-case string constants),
    each with the comment that explains it."""
    try:
        meanings = {m["code"]: m["meaning"] or "" for m in _CODE_LINE.finditer(
            inspect.getsource(socket))}
    except OSError:  # no source shipped: codes without their meaning
        meanings = {}
    return {value: meanings.get(value, "").strip() for name, value in vars(socket).items()
            if name.isupper() and isinstance(value, str) and _CODE.fullmatch(value)}


def build_asyncapi(*, title: str = "Hubbub Socket.IO gateway",
                   version: str = __version__) -> dict[str, Any]:
    """The whole document as plain JSON-ready data. Raises TypeError for a type msgspec
    cannot describe."""
    client = dict(socket.CLIENT_EVENTS)
    pushed = server_events()
    acks = {event: ACKS.get(event, socket.AckOk) for event in client}
    types = _unique([ConnectAuth, ConnectError, Handshake, socket.AckError, *client.values(),
                     *acks.values(), *pushed.values()])
    schemas, components = msgspec.json.schema_components(
        types, ref_template=REF_PREFIX + "{name}"
    )
    schema_of = dict(zip(types, schemas, strict=True))
    # Inline: a bare {"$ref"} here would match both of the binding's Schema | Reference.
    handshake = components.pop(Handshake.__name__)
    channel_ref = {"$ref": f"#/channels/{CHANNEL}"}
    messages: dict[str, dict[str, Any]] = {}

    def message(key: str, struct: Wire, name: str, **more: Any) -> dict[str, str]:
        # The payload schema carries the Struct's docstring as its description.
        messages[key] = {"name": name, "title": name, **more, "contentType": JSON,
                         "payload": schema_of[struct]}
        return {"$ref": f"#/channels/{CHANNEL}/messages/{key}"}

    error_ack = message("ack.error", socket.AckError, "ack", title="AckError",
                        summary="The ack of a refused event: {ok: false, error: {code, "
                                "message, retry_after?}}",
                        description=_error_description(), examples=_ERROR_EXAMPLES)
    operations: dict[str, dict[str, Any]] = {
        "connect": {
            "action": "send", "channel": channel_ref, "title": "connect",
            "summary": "Open the connection with an access token",
            "description": "Accepted: Socket.IO's own CONNECT answer `{sid}`. Refused: "
                           "`connect_error` with `data: {code}`; the socket is not opened.",
            "messages": [message("connect", ConnectAuth, "connect", summary="auth: {token}")],
            "reply": {"messages": [message("connect_error", ConnectError, "connect_error",
                                           summary="The connection is refused")]},
        },
    }
    for event, struct in client.items():
        ack = acks[event]
        users = ", ".join(e for e, a in acks.items() if a is ack)
        ok_ack = message(f"ack.{ack.__name__}", ack, "ack", title=ack.__name__,
                         summary=f"The ack of {users}")
        operations[f"send.{_slug(event)}"] = {
            "action": "send", "channel": channel_ref, "title": event,
            "summary": f"Emit {event}; acked with {ack.__name__} or AckError",
            **_described(struct),
            "messages": [message(f"client.{_slug(event)}", struct, event)],
            "reply": {"messages": [ok_ack, error_ack]},
        }
    for event, struct in pushed.items():
        operations[f"receive.{_slug(event)}"] = {
            "action": "receive", "channel": channel_ref, "title": event,
            "summary": f"{event}, pushed by the server", **_described(struct),
            "messages": [message(f"server.{_slug(event)}", struct, event)],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": _DESCRIPTION},
        "defaultContentType": JSON,
        "servers": {
            "hubbub": {
                "host": "{host}", "protocol": "ws",
                "description": "The Hubbub server itself (`wss` behind TLS); the same origin "
                               "as the REST API.",
                "variables": {"host": {"default": "127.0.0.1:8080",
                                       "description": "Host and port of the API"}},
            },
        },
        "channels": {
            CHANNEL: {
                "address": SOCKET_PATH, "title": "Socket.IO connection",
                "description": "One WebSocket (Engine.IO 4, Socket.IO 5, namespace `/`) "
                               "carrying every event in both directions.",
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
                "bindings": {"ws": {"method": "GET", "query": handshake,
                                    "bindingVersion": "0.1.0"}},
            },
        },
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


_DESCRIPTION = (
    "Hubbub's realtime API: Socket.IO (namespace `/`) at `/socket.io/`. Seen from a client: "
    "`send` operations are events the client emits, `receive` operations events the server "
    "pushes. Connect with `auth: {token: <access JWT>}`. Every client event takes an ack "
    "(the operation's reply): `{ok: true, ...}` or `{ok: false, error: {code, message}}`; a "
    "malformed payload gets `ok: false`, never a dropped connection. Times are RFC 3339 UTC "
    "strings, ids are strings."
)
_ERROR_EXAMPLES = [
    {"name": "invalid", "payload": {"ok": False, "error": {
        "code": "invalid", "message": "text: must not be empty"}}},
    {"name": "rate_limited", "payload": {"ok": False, "error": {
        "code": "rate_limited", "message": "too many events on this connection; slow down",
        "retry_after": 0.25}}},
]


def _error_description() -> str:
    codes = "\n".join(f"- `{code}`" + (f": {meaning}" if meaning else "")
                      for code, meaning in gateway_error_codes().items())
    return ("`error.code` is one of the gateway's codes below, or a refusal by the actor "
            "handling the event (e.g. `not_member`, `call_not_found`, `busy`).\n\n" + codes)


def _described(struct: Wire) -> dict[str, str]:
    doc = inspect.getdoc(struct) if struct.__doc__ else None
    return {"description": doc} if doc else {}


def _slug(event: str) -> str:
    """`room:join` -> `room.join` (AsyncAPI component keys allow no colon)."""
    return event.replace(":", ".")


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))
