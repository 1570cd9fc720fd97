"""The JSON python-socketio encodes and decodes Hubbub's packets with: msgspec, with the
standard library as the fallback for what msgspec refuses, so the result is always the
standard library's (each chat message is decoded once and its ack encoded once; stdlib json was
the largest item of that in `make bench-chat`).

msgspec refuses a few inputs the standard library accepts: `\\ud800`-style lone surrogates
(which the gateway then refuses as `invalid`, as before), `NaN`/`Infinity`, numbers beyond a
double. Those rare packets take the slow path and get the same treatment as ever. One
difference stays, on output: a non-finite float is written as `null` (JSON has no NaN; the
standard library's `NaN` would break JSON.parse in a browser).

`GatewayPacket` carries it: python-socketio's Packet class with this JSON, handed to the server
as its serializer, so no other Socket.IO server or client in the process is affected.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from socketio import packet

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class _Json:
    @staticmethod
    def dumps(obj: Any, **options: Any) -> str:
        try:
            return _encoder.encode(obj).decode()
        except (TypeError, UnicodeEncodeError, OverflowError):
            return json.dumps(obj, **options)

    @staticmethod
    def loads(text: str | bytes, **options: Any) -> Any:
        try:
            return _decoder.decode(text)
        except msgspec.DecodeError:
            return json.loads(text, **options)


class GatewayPacket(packet.Packet):
    json = _Json


# What a packet's values nearly all are: nothing inside to search.
_SCALARS = frozenset((str, int, float, bool, type(None)))


def holds_binary(value: Any) -> bool:
    """Whether bytes hide anywhere in `value`: python-socketio sends those as attachments of
    a binary packet (msgspec would write them as base64 text). Exactly its
    Packet.data_is_binary (lists and dicts are searched), without the reduce over lambdas,
    which cost more than encoding the packet; scalars are passed over by their type without a
    call (a chat message's packet: 1.8 us instead of 4.3)."""
    if type(value) in _SCALARS:
        return False
    if isinstance(value, bytes | bytearray):
        return True
    if isinstance(value, list):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    else:
        return False
    for item in items:  # noqa: SIM110 (a loop, not any() over a generator: half the time)
        if type(item) not in _SCALARS and holds_binary(item):
            return True
    return False
