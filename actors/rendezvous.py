"""Cluster placement: rendezvous (highest random weight) hashing of (kind, key) over the live
nodes of a membership view.

Every node holding the same view picks the same owner for a key, with no coordination. When a
node joins, only the keys it now wins move to it (about 1/N of them); when one leaves, only its
keys move, each to the node that scored second. A view is versioned: nodes compare versions
to tell which of two disagreeing views is newer.
"""

from __future__ import annotations

import hashlib

from protocols.cluster import View

# Owner lookups are cached per view; past this many keys the cache starts over.
_CACHE_LIMIT = 200_000


def score(node: str, kind: str, key: str) -> int:
    digest = hashlib.blake2b(f"{kind}\x00{key}\x00{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(nodes: tuple[str, ...], kind: str, key: str) -> str:
    """The node of `nodes` that hosts (kind, key). Ties (astronomically rare) go to the
    greater node id, so every node still agrees."""
    return max(nodes, key=lambda node: (score(node, kind, key), node))


class RendezvousPlacement:
    """actors.placement.Placement over the current view. Until the first view arrives (and
    whenever this node is the only one) everything is local."""

    def __init__(self, local_node: str) -> None:
        self._local = local_node
        self._view = View(0, (local_node,))
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def local_node(self) -> str:
        return self._local

    @property
    def view(self) -> View:
        return self._view

    def update(self, view: View) -> bool:
        """Adopt `view` unless it is older than the current one or the same nodes; returns
        whether placement changed. An empty view (this node evicted, nobody else alive)
        keeps the previous one: there is nobody to hand anything to."""
        if view.version < self._view.version or not view.nodes:
            return False
        changed = view.nodes != self._view.nodes
        self._view = view
        if changed:
            self._cache.clear()
        return changed

    def node_for(self, kind: str, key: str) -> str:
        nodes = self._view.nodes
        if len(nodes) == 1:
            return nodes[0]
        slot = (kind, key)
        found = self._cache.get(slot)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[slot] = owner(nodes, kind, key)
        return found
