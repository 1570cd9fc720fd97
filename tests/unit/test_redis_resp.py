"""Packing commands for the multiplexed Redis client (storage/redis/resp.py): the bytes
redis-py's own packer writes, and redis-py's error for an argument it cannot send."""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers import Encoder
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError

from storage.redis.resp import pack_command

# redis-py's own packer, with the encoding its clients use.
_REDIS_PY = PythonRespSerializer(1 << 30, Encoder("utf-8", "strict", False).encode)


def redis_py_packs(*args: Any) -> bytes:
    return b"".join(bytes(part) for part in _REDIS_PY.pack(*args))


@pytest.mark.parametrize("args", [
    ("PUBLISH", "hubbub:sio:room:r1", b"\x94\xa1n" + bytes(300)),
    ("EVALSHA", "a" * 40, 1, "hubbub:chat:history:r1", 5, b"1|{}", 1000, -17, 604800000),
    ("SET", "caf\u00e9", 0.1 + 0.2),
    ("SET", "k", 2**70),
    ("SET", "k", memoryview(b"view")),
    ("SCRIPT LOAD", "return 1"),
    ("PING",),
])
def test_commands_are_packed_as_redis_py_packs_them(args: tuple[Any, ...]) -> None:
    assert pack_command(args) == redis_py_packs(*args)


@pytest.mark.parametrize("bad", [True, None, [1], {"a": 1}])
def test_an_argument_redis_cannot_take_is_a_data_error(bad: object) -> None:
    with pytest.raises(DataError, match=type(bad).__name__):
        pack_command(("SET", "k", bad))
