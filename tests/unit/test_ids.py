"""Ids are UUIDv7: valid, unique and ordered by creation time."""

from __future__ import annotations

import time
import uuid

import pytest

from protocols.ids import is_id, new_id


def test_new_ids_are_version_7_and_unique() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert is_id(value)


def test_ids_sort_by_creation_millisecond() -> None:
    first = new_id()
    later = [new_id() for _ in range(200)]
    # The first 48 bits are the millisecond timestamp: never earlier than a previous id's.
    assert all(v[:13] >= first[:13] for v in later)


def test_ids_of_one_millisecond_strictly_increase(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock standing still (one millisecond), then going back: ids still increase.
    now = [1_800_000_000_000_000_000]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    same_ms = [new_id() for _ in range(500)]
    now[0] -= 5_000_000
    after_step_back = [new_id() for _ in range(10)]
    ids = same_ms + after_step_back
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(uuid.UUID(v).version == 7 and uuid.UUID(v).variant == uuid.RFC_4122
               for v in ids)
    assert {v[:13] for v in ids} == {same_ms[0][:13]}  # all stamped with that millisecond


def test_is_id_rejects_garbage() -> None:
    assert not is_id("not-an-id")
    assert not is_id("@alice")
    assert not is_id("")
