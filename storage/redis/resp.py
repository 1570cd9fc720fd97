"""What the multiplexed client (storage/redis/multiplexed.py) and the subscriber
(storage/redis/subscriber.py) share: packing a command in the Redis protocol, and the
address they connect to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hiredis
from redis.exceptions import DataError


def pack_command(args: tuple[Any, ...]) -> bytes:
    """A command in the Redis protocol (RESP), its arguments encoded as redis-py encodes
    them (str as UTF-8, int and float as their repr). hiredis packs it in C: a fifth of the
    Python version's time, which was 3% of a cluster node's CPU (a PUBLISH per chat
    message). An argument of another type raises DataError, as redis-py does."""
    if " " in args[0]:
        args = (*args[0].split(), *args[1:])  # "SCRIPT LOAD": two words
    try:
        return hiredis.pack_command(args)
    except TypeError as exc:
        kinds = ", ".join(sorted({type(a).__name__ for a in args
                                  if not isinstance(a, str | bytes | int | float | memoryview)
                                  or isinstance(a, bool)}))
        raise DataError(f"Invalid input of type: {kinds}. Convert to a bytes, string, int "
                        "or float first.") from exc


@dataclass(frozen=True, slots=True)
class Address:
    """Where and as whom to connect (from the client's URL)."""

    host: str
    port: int
    username: str | None
    password: str | None
    connect_timeout: float
