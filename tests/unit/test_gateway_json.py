"""The gateway's packet JSON (server/gateway/json_codec.py) gives what the standard library
gives, also for the inputs msgspec refuses."""

from __future__ import annotations

import json
import math

import pytest
import socketio

from server.gateway.json_codec import GatewayPacket

PACKETS = [
    '2["message:send",{"room_id":"r","client_id":"c","text":"hello é ✓"}]',
    '21["message:send",{"text":"lone \\ud800 surrogate"}]',
    '2["x",NaN,Infinity,-Infinity,1e400]',
    '2["x",123456789012345678901234567890]',
]


@pytest.mark.parametrize("encoded", PACKETS)
def test_decoding_matches_the_standard_library(encoded: str) -> None:
    ours = GatewayPacket(encoded_packet=encoded).data
    theirs = socketio.packet.Packet(encoded_packet=encoded).data
    assert json.dumps(ours) == json.dumps(theirs)


@pytest.mark.parametrize("data", [
    ["message:new", {"message": {"seq": 1, "text": "é ✓"}}],
    ["x", {"text": "lone \ud800 surrogate"}],
])
def test_encoding_matches_the_standard_library(data: list[object]) -> None:
    ours = GatewayPacket(socketio.packet.EVENT, data=data).encode()
    theirs = socketio.packet.Packet(socketio.packet.EVENT, data=data).encode()
    assert json.loads(ours[1:]) == json.loads(theirs[1:]) == data


def test_non_finite_numbers_are_encoded_as_json_null() -> None:
    # The standard library writes NaN, which is not JSON and which JSON.parse refuses.
    encoded = GatewayPacket(socketio.packet.EVENT, data=["x", math.nan, math.inf]).encode()
    assert encoded == '2["x",null,null]'


def test_other_socketio_packets_keep_the_standard_json() -> None:
    assert socketio.packet.Packet.json is not GatewayPacket.json
