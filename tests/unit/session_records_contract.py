"""One contract check run against every SessionRecords (memory here, Redis in integration)."""

from __future__ import annotations

from server.gateway.ports import SessionRecords


async def check_session_records(records: SessionRecords) -> None:
    """Everything but expiry (a real Redis expires keys on its own clock; each adapter's test
    checks expiry its own way)."""
    ann, bob, cat = "user-ann", "user-bob", "user-cat"
    assert await records.of_user(ann) == {}
    assert await records.users_on("n1") == set()
    assert await records.forget_node("n1") == set()

    await records.add(ann, "a1", "n1")
    await records.add(ann, "a2", "n2")
    await records.add(ann, "a2", "n2")  # idempotent
    await records.add(bob, "b1", "n1")
    assert await records.of_user(ann) == {"a1": "n1", "a2": "n2"}
    assert await records.users_on("n1") == {ann, bob}
    assert await records.users_on("n2") == {ann}

    # A user leaves a node's index only with their last session there.
    await records.add(ann, "a3", "n1")
    await records.remove(ann, "a1", "n1")
    assert await records.users_on("n1") == {ann, bob}
    await records.remove(ann, "a3", "n1")
    assert await records.of_user(ann) == {"a2": "n2"}
    assert await records.users_on("n1") == {bob}

    # Only the node a session is recorded on removes it; unknown sessions are ignored.
    await records.remove(ann, "a2", "n1")
    await records.remove(ann, "nope", "n2")
    await records.remove(cat, "c1", "n3")
    assert await records.of_user(ann) == {"a2": "n2"}
    assert await records.users_on("n2") == {ann}
    await records.remove(ann, "a2", "n2")
    assert await records.of_user(ann) == {}
    assert await records.users_on("n2") == set()

    # Forgetting a node drops its sessions and index, and nothing of other nodes.
    await records.add(ann, "a4", "n1")
    await records.add(ann, "a5", "n2")
    await records.add(cat, "c2", "n2")
    assert await records.forget_node("n1") == {ann, bob}
    assert await records.of_user(ann) == {"a5": "n2"}
    assert await records.of_user(bob) == {}
    assert await records.users_on("n1") == set()
    assert await records.users_on("n2") == {ann, cat}
    assert await records.forget_node("n1") == set()

    # A node that comes back records afresh.
    await records.add(bob, "b2", "n1")
    assert await records.users_on("n1") == {bob}
    assert await records.of_user(bob) == {"b2": "n1"}


async def check_many_users_on_one_node(records: SessionRecords, count: int) -> None:
    """forget_node over more users than one batch of the Redis adapter."""
    users = {f"user-{i}" for i in range(count)}
    for user in users:
        await records.add(user, f"s-{user}", "crowded")
    await records.add("user-0", "elsewhere", "other")
    assert await records.users_on("crowded") == users
    assert await records.forget_node("crowded") == users
    assert await records.users_on("crowded") == set()
    assert await records.of_user("user-1") == {}
    assert await records.of_user("user-0") == {"elsewhere": "other"}
