"""The in-memory SessionRecords (the Redis one runs the same checks in integration)."""

from __future__ import annotations

import pytest

from actors.clock import ManualClock
from storage.memory.sessions import MemorySessionRecords
from tests.unit.session_records_contract import (
    check_many_users_on_one_node,
    check_session_records,
)


async def test_memory_session_records_contract() -> None:
    await check_session_records(MemorySessionRecords())


async def test_forget_node_with_many_users() -> None:
    await check_many_users_on_one_node(MemorySessionRecords(), 450)


async def test_records_expire_ttl_after_the_last_add() -> None:
    clock = ManualClock()
    records = MemorySessionRecords(clock=clock.time, ttl=100)
    await records.add("ann", "a1", "n1")
    clock.advance(60)
    await records.add("bob", "b1", "n2")
    await records.add("ann", "a2", "n2")  # refreshes ann's records, not n1's index
    clock.advance(50)
    assert await records.users_on("n1") == set()
    assert await records.of_user("ann") == {"a1": "n1", "a2": "n2"}
    assert await records.users_on("n2") == {"ann", "bob"}
    clock.advance(50)
    assert await records.of_user("ann") == {}
    assert await records.users_on("n2") == set()
    # Expired entries are dropped from memory, not only hidden.
    await records.add("cat", "c1", "n3")
    assert list(records._users) == ["cat"] and list(records._nodes) == ["n3"]


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemorySessionRecords(ttl=0)
