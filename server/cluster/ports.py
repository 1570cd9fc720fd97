"""What the cluster's clean-up after a dead node needs from the other areas."""

from __future__ import annotations

from typing import Protocol


class NodeSessions(Protocol):
    async def forget_node(self, node_id: str) -> set[str]:
        """Drop every session record of `node_id`; returns the users who had one there."""
        ...


class NodeCalls(Protocol):
    async def live_calls_on(self, node_id: str) -> list[str]:
        """Ids of calls not ended with a participant joined from a socket on `node_id`."""
        ...
