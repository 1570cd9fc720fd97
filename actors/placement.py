"""Placement: which node hosts an actor. The runtime asks; actor code never does.

One node hosts everything with `LocalPlacement`. The cluster placement (rendezvous hashing
over live nodes, messages to remote actors over Redis pub/sub) implements the same two
protocols, so actor code is the same on one node or fifty.
"""

from __future__ import annotations

from typing import Any, Protocol


class Placement(Protocol):
    @property
    def local_node(self) -> str:
        """This node's id."""
        ...

    def node_for(self, kind: str, key: str) -> str:
        """The node that hosts (kind, key) now. Must agree across nodes for a given
        membership view; a brief disagreement during a membership change is tolerated
        because durable state is fenced in storage."""
        ...


class RemoteDelivery(Protocol):
    """Messages to actors hosted on other nodes (actors/remote.py states the semantics)."""

    def knows(self, message: Any) -> bool:
        """Whether `message` can travel to another node (its type is registered)."""
        ...

    async def deliver(self, node: str, kind: str, key: str, message: Any,
                      hops: int = 0) -> None:
        """Send a tell (at most once). Raises actors.errors.Unavailable when `node` is not
        listening: nothing was delivered, the caller may route again."""
        ...

    def deliver_nowait(self, node: str, kind: str, key: str, message: Any) -> None:
        """Queue a tell without waiting; raises MailboxFull when the outbound queue is
        full. A tell that then reaches nobody is handed back to be routed again."""
        ...

    async def ask(self, node: str, kind: str, key: str, message: Any, timeout: float,
                  hops: int = 0) -> Any:
        """Ask an actor hosted on another node; same errors as a local ask, plus
        Unavailable when `node` is not listening."""
        ...


class LocalPlacement:
    """Every actor lives on this node."""

    def __init__(self, node_id: str = "local") -> None:
        self._node = node_id

    @property
    def local_node(self) -> str:
        return self._node

    def node_for(self, kind: str, key: str) -> str:
        return self._node
