"""The JSON module python-socketio and python-engineio encode and decode packets with:
msgspec instead of the standard library (each chat message is decoded once and its ack
encoded once per sender; stdlib json was the largest item of that in `make bench-chat`).

python-socketio asks for `dumps(obj, separators=...)` and `loads(text)`; the output is the same
compact JSON. Differences with the standard library, all on input no client should send:
`NaN`, `Infinity` and numbers beyond a double's range are not JSON and are refused (the frame
counts as a bad frame, server/gateway/frames.py) instead of becoming floats.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(obj: Any, **_options: Any) -> str:
    return _encoder.encode(obj).decode()


def loads(text: str | bytes, **_options: Any) -> Any:
    return _decoder.decode(text)
