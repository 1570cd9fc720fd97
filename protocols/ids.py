"""Identifiers: time-ordered UUIDv7 strings (RFC 9562), so ids sort by creation time.

Within a process they strictly increase, also within one millisecond (RFC 9562's method 2: the
74 random bits of the first id of a millisecond count up for the next ones), so "newest
first" by id is the order things were made in; lists sorted by id (notifications, messages)
depend on it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_RANDOM_BITS = 74
_lock = threading.Lock()  # ids are made in worker threads too
_last_ms = 0
_last_random = 0


def new_id() -> str:
    """A fresh UUIDv7 as a canonical string: 48-bit ms timestamp, version, 74 bits that are
    random for the first id of a millisecond and count up from there."""
    global _last_ms, _last_random
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms, _last_random = ms, int.from_bytes(os.urandom(10), "big") >> 6
        elif _last_random + 1 < 1 << _RANDOM_BITS:
            _last_random += 1  # the same millisecond, or the clock went back: keep counting
        else:  # 2^74 ids in one millisecond: borrow the next one
            _last_ms, _last_random = _last_ms + 1, 0
        ms, rand = _last_ms, _last_random
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    digits = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, at a third of the cost
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def is_id(value: str) -> bool:
    """True when value is a canonical UUID string (the shape every Hubbub id has)."""
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError):
        return False
