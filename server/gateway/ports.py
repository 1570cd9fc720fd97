"""The gateway's own ports (actor ports are in actors/ports.py)."""

from __future__ import annotations

from typing import Protocol


class PresenceVisibility(Protocol):
    async def visible_to(self, viewer_id: str, user_ids: list[str]) -> set[str]:
        """The subset of user_ids (canonical lowercase UUIDs) that exist and have no block
        with viewer_id in either direction: whose presence the viewer may see. The viewer
        always sees themself. One query whatever the number of ids."""
        ...


class SessionRecords(Protocol):
    """Which sockets each user has, on which node: the source of truth the user's UserActor
    derives its sessions from (wherever in the cluster it runs). A record is written only by
    the node holding the socket (add on connect, remove on disconnect), except that any node
    may drop the records of a node that left the live view (`forget_node`, or `remove` of
    such a session). Every operation on one user is atomic, so concurrent writers on several
    nodes never lose each other's sessions.

    A Redis hash per user plus a set of users per node when configured, dicts otherwise.
    Records expire `ttl` seconds (7 days by default) after the last `add` touching them, so a
    record whose remove was lost does not linger forever; a socket that lives longer must be
    added again (the gateway does so on every auth:refresh). Storage failures raise
    storage.errors.StorageError."""

    async def add(self, user_id: str, session_id: str, node_id: str) -> None:
        """Record that `node_id` holds socket `session_id` of the user (idempotent) and
        refresh the expiry of the user's records and of the node's user index."""
        ...

    async def remove(self, user_id: str, session_id: str, node_id: str) -> None:
        """Drop the session when it is recorded on `node_id` (a record naming another node is
        left alone); the user leaves the node's index once they have no other session
        recorded on that node. Unknown sessions are ignored."""
        ...

    async def of_user(self, user_id: str) -> dict[str, str]:
        """The user's recorded sessions: socket id -> node id (empty when none)."""
        ...

    async def users_on(self, node_id: str) -> set[str]:
        """The users with at least one session recorded on `node_id`."""
        ...

    async def forget_node(self, node_id: str) -> set[str]:
        """Drop every record of `node_id` (each user's sessions on it, and its user index),
        for a node that is dead or left; returns the users that had sessions on it. Records
        on other nodes stay. Atomic per user, not across users."""
        ...


class RoomChannels(Protocol):
    """A channel per room between the nodes (storage/redis/room_channels.py): a node
    receives a room's packets while it holds sockets in the room. Rooms are named by
    server.gateway.broadcaster.channel_key (chat rooms, presence watchers)."""

    async def hold(self, room_id: str) -> None:
        """One more socket of this node in the room; returns once the node receives the
        room's packets. Raises storage.errors.StorageError when that cannot be confirmed."""
        ...

    async def release(self, room_id: str) -> None:
        """One socket fewer (the last one stops the node receiving the room)."""
        ...

    async def publish(self, room_id: str, packet: str, skip: list[str]) -> int | None:
        """Send an encoded Socket.IO packet to the other nodes holding the room, in call
        order; how many nodes Redis counted, or None when it did not wait to know."""
        ...
