"""server/gateway/inbound.py: which frames the fast path parses (and how, compared with
python-socketio's own parser), which it leaves to python-socketio, and that the acks it
encodes are the bytes python-socketio's Packet writes."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any, cast

import pytest
from socketio import packet

from server.gateway import inbound
from server.gateway.connections import Gateway
from server.gateway.frames import GatewayServer
from server.gateway.inbound import ack_packet, parse, path_of
from server.gateway.json_codec import GatewayPacket, holds_binary
from server.gateway.manager import LocalManager
from server.gateway.namespace import GatewayNamespace

TAKEN = [
    '42["a"]',
    '42["message:send",{"room_id":"r","text":"é ☃ 😀 \\u00e9","n":[1,2.5,null,true]}]',
    '420["a",1]',
    '421["a",{"b":{}}]',
    '42007["a"]',
    '42123456789012345678["a"]',
    '42[42,{"x":1}]',
    '42[["a"],"b"]',
    '42["a"," ","-","/"]',
    '4212["a-b","1-2"]',
    '42["a",123456789012345678901234567890,1e-400]',
]
LEFT = [
    "4",
    "40",
    '40{"token":"t"}',
    "41",
    '43["a"]',
    '431[{"ok":true}]',
    '451-["a",{"_placeholder":true,"num":0}]',
    '451-2["a",{"_placeholder":true,"num":0}]',
    '421-["a"]',  # python-socketio reads an attachment count here, even on an EVENT
    '42/chat,["a"]',
    '42/chat,3["a"]',
    "42",
    "42[]",
    '42{"a":1}',
    '42"a"',
    "421",
    '42 ["a"]',
    '42x["a"]',
    '42\u0661["a"]',  # ARABIC-INDIC DIGIT ONE: a digit to python-socketio (isdigit)
    '421234567890123456789["a"]',  # 19 digits
    '42["a"',
    '42["a"]x',
    '42["\\ud800"]',  # msgspec refuses a lone surrogate; the standard library does not
    '42["a",NaN]',
    '42["a",Infinity]',
    '42["a",1e400]',  # beyond a double
    "2",
    "3",
]


@pytest.mark.parametrize("text", TAKEN)
def test_events_are_read_as_python_socketio_reads_them(text: str) -> None:
    theirs = GatewayPacket(encoded_packet=text[1:])
    assert theirs.packet_type == packet.EVENT and theirs.namespace is None
    assert parse(text) == (theirs.id, theirs.data)


@pytest.mark.parametrize("text", LEFT)
def test_everything_else_is_left_to_python_socketio(text: str) -> None:
    assert parse(text) is None


PAYLOADS: list[list[Any]] = [
    [],
    [{"ok": True}],
    [{"ok": False, "error": {"code": "invalid", "message": "é ☃ 😀 \"quoted\" \\ \n"}}],
    [{"ok": True, "message": {"seq": 3, "at": 1.5, "gone": None, "tags": ["a", "b"]}}],
    [1, "two", None, [3.25, False]],
    [{"ok": False, "text": "lone \ud800 surrogate"}, 2],  # the standard library's JSON
    [{"big": 2**70}],
    [float("nan"), float("inf")],
    [{"bin": b"\x00\x01"}],
    [[bytearray(b"x")]],
]


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("ack_id", [0, 7, 123456789012345678])
def test_acks_are_the_bytes_python_socketio_writes(data: list[Any], ack_id: int) -> None:
    theirs = GatewayPacket(packet.ACK, namespace="/", id=ack_id, data=data).encode()
    ours = ack_packet(ack_id, data, GatewayPacket.json)
    if isinstance(theirs, list):  # a binary ack: left to python-socketio
        assert ours is None
    else:
        assert ours == theirs


@pytest.mark.parametrize("data", [*PAYLOADS, b"", {"a": [{"b": bytearray()}]}, ("t", b"")])
def test_binary_is_found_where_python_socketio_finds_it(data: Any) -> None:
    assert holds_binary(data) == GatewayPacket.data_is_binary(data)


def gateway_server() -> tuple[GatewayServer, GatewayNamespace]:
    sio = GatewayServer(async_mode="aiohttp", client_manager=LocalManager())
    ns = GatewayNamespace(Gateway(sio=sio, system=cast(Any, None), node_id="n1",
                                  events_per_second=1, event_burst=1))
    sio.register_namespace(ns)
    return sio, ns


def test_only_a_server_with_the_gateway_namespace_has_the_fast_path() -> None:
    plain = GatewayServer(async_mode="aiohttp", client_manager=LocalManager())
    plain.on("echo", lambda sid, data: data)
    assert path_of(plain.eio) is None
    sio, ns = gateway_server()
    path = path_of(sio.eio)
    assert path is not None and path.namespace is ns and path_of(sio.eio) is path


async def test_handlers_registered_on_the_server_come_first() -> None:
    sio, _ = gateway_server()
    path = path_of(sio.eio)
    assert path is not None
    socket = SimpleNamespace(sid="e1")
    frame = '42["presence:subscribe",{"user_ids":[]}]'
    assert path.take(socket, frame) is False  # not connected to "/"
    await sio.manager.connect("e1", "/")
    assert path.take(socket, frame) is True
    await asyncio.gather(*inbound._running)
    sio.on("presence:subscribe", lambda sid, data: None)
    assert path.take(socket, frame) is False  # python-socketio calls that one


def test_the_libraries_are_the_versions_the_fast_path_mirrors() -> None:
    # inbound.py repeats python-engineio's AsyncSocket.receive (a log line) and python-
    # socketio's _handle_event / _handle_event_internal for one case: on an upgrade, re-read
    # them and the module's docstring before changing these.
    assert version("python-engineio") == "4.15.1"
    assert version("python-socketio") == "5.18.1"
