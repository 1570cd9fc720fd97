"""Rendezvous placement: agreement, minimal movement, versioned views."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.rendezvous import RendezvousPlacement, View, owner

KEYS = [f"room-{i}" for i in range(6000)]


def placement(local: str, version: int, *nodes: str) -> RendezvousPlacement:
    p = RendezvousPlacement(local)
    p.update(View.of(version, nodes))
    return p


def test_every_node_with_the_same_view_agrees() -> None:
    nodes = ("n1", "n2", "n3")
    views = [placement(n, 7, *nodes) for n in nodes]
    for key in KEYS[:2000]:
        owners = {p.node_for("RoomActor", key) for p in views}
        assert len(owners) == 1


def test_a_joining_node_takes_about_one_nth_and_nothing_else_moves() -> None:
    before = ("n1", "n2", "n3", "n4")
    after = (*before, "n5")
    moved = [k for k in KEYS if owner(before, "RoomActor", k) != owner(after, "RoomActor", k)]
    # Every key that moved went to the newcomer; about 1/5 of them moved.
    assert all(owner(after, "RoomActor", k) == "n5" for k in moved)
    assert 0.15 < len(moved) / len(KEYS) < 0.25


def test_a_leaving_node_only_gives_away_its_own_keys() -> None:
    before = ("n1", "n2", "n3")
    after = ("n1", "n3")
    for key in KEYS[:3000]:
        if owner(before, "UserActor", key) != "n2":
            assert owner(after, "UserActor", key) == owner(before, "UserActor", key)


def test_keys_spread_evenly() -> None:
    nodes = ("a", "b", "c")
    counts = {n: 0 for n in nodes}
    for key in KEYS:
        counts[owner(nodes, "CallActor", key)] += 1
    assert all(abs(c / len(KEYS) - 1 / 3) < 0.05 for c in counts.values())


def test_the_kind_is_part_of_the_key() -> None:
    nodes = ("a", "b", "c")
    differs = sum(owner(nodes, "RoomActor", k) != owner(nodes, "UserActor", k)
                  for k in KEYS[:900])
    assert differs > 300


def test_an_older_view_is_ignored_and_an_empty_one_kept_out() -> None:
    p = placement("a", 5, "a", "b")
    assert not p.update(View.of(4, ("a",)))
    assert p.view.nodes == ("a", "b")
    assert not p.update(View.of(6, ()))
    assert p.view.nodes == ("a", "b")
    assert p.update(View.of(6, ("a",)))
    assert p.node_for("RoomActor", "x") == "a"


def test_until_a_view_arrives_everything_is_local() -> None:
    p = RendezvousPlacement("solo")
    assert {p.node_for("RoomActor", k) for k in KEYS[:100]} == {"solo"}


@given(st.sets(st.text(min_size=1, max_size=8), min_size=1, max_size=6),
       st.text(max_size=20))
def test_owner_is_always_a_member_and_order_does_not_matter(nodes: set[str], key: str) -> None:
    ordered = tuple(sorted(nodes))
    chosen = owner(ordered, "K", key)
    assert chosen in nodes
    assert owner(tuple(reversed(ordered)), "K", key) == chosen
