"""What the multiplexed client (storage/redis/multiplexed.py) and the subscriber
(storage/redis/subscriber.py) share: packing a command in the Redis protocol, and the
address they connect to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis._parsers import Encoder

_ENCODER = Encoder("utf-8", "strict", False)


def pack_command(args: tuple[Any, ...]) -> bytes:
    """A command in the Redis protocol (RESP), its arguments encoded as redis-py does."""
    words = args[0].encode().split()  # "SCRIPT LOAD": two words
    parts = [b"*%d\r\n" % (len(words) + len(args) - 1)]
    encode = _ENCODER.encode
    for arg in (*words, *args[1:]):
        data = encode(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Address:
    """Where and as whom to connect (from the client's URL)."""

    host: str
    port: int
    username: str | None
    password: str | None
    connect_timeout: float
