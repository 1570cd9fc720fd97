"""Cluster wire shapes: what nodes say to each other over Redis, and the runtime messages that
any actor kind may receive because of the cluster.

Node to node (one Redis pub/sub channel per node, see storage/redis/cluster_transport.py):
`RemoteTell`, `RemoteAsk` and `RemoteReply` carry actor messages and their replies, each
encoded once with msgspec (MessagePack) under the type name of a typed registry
(protocols/actor_messages.py), never pickle. `ViewChanged` asks every node to re-read the
membership view now rather than at its next heartbeat.

Delivery is at most once (Redis pub/sub): every ask has a timeout, and the sender learns at
once when the target node is not listening (PUBLISH reaches no subscriber), in which case the
runtime waits for the next membership view and retries at the new owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

# -- Messages to actors that the cluster itself sends ------------------------------------------


class NodeLeft(msgspec.Struct, frozen=True, kw_only=True):
    """Tell to a UserActor or CallActor: `node_id` left the cluster (it died, or shut down
    without closing some sockets). Whatever lived only on that node is gone: its sessions
    are dropped (presence may go offline, watchers are told) and its call participants
    leave their calls."""

    node_id: str


class Activate(msgspec.Struct, frozen=True):
    """Handled by the runtime, never by `receive`: activate the actor (run `on_start`, which
    reloads its state and re-arms its timers) if it is not live. Sent to the new owner when
    an actor with pending timers is handed over, and by the gateway for actors its sockets
    depend on whose owner changed, so nothing that must keep ticking is left dormant."""


# -- Node to node envelopes ------------------------------------------------------------------

ErrorKind = Literal["rejected", "crashed", "timeout", "busy", "unavailable", "stopped",
                    "unknown_message"]


class RemoteError(msgspec.Struct, frozen=True, kw_only=True):
    """Why an ask was not answered with a value. `rejected` carries the actor's own code;
    `unavailable` a hint (seconds) after which a retry may succeed."""

    kind: ErrorKind
    code: str = ""
    message: str = ""
    retry_after: float | None = None


# RemoteTell and RemoteAsk leave out fields at their defaults (omit_defaults): a field added
# later with a default (`traceparent`) costs nothing on the wire while unused, and nodes of
# either release decode each other's envelopes (a missing field takes its default, an unknown
# one is ignored).


class RemoteTell(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="tell",
                 tag_field="op"):
    kind: str  # actor kind (class name)
    key: str
    type: str  # registry name of the message
    body: bytes  # the message, msgspec MessagePack
    sender: str  # node id
    view: int  # the sender's membership view version when it picked this node
    hops: int = 0  # forwards so far (a node that no longer owns the key passes it on)
    # The sender's trace context (W3C `traceparent`) when tracing is on and the message was
    # sent inside a trace; the receiver handles it as a child span of that context.
    traceparent: str | None = None


class RemoteAsk(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="ask",
                tag_field="op"):
    id: int  # unique per sender; the reply names it
    kind: str
    key: str
    type: str
    body: bytes
    sender: str  # the reply goes to this node's channel
    view: int
    timeout: float  # seconds the sender waits; the receiver gives up after as long
    hops: int = 0
    traceparent: str | None = None  # as RemoteTell's


class RemoteReply(msgspec.Struct, frozen=True, kw_only=True, tag="reply", tag_field="op"):
    id: int
    type: str = "none"  # registry name of the value (when no error)
    body: bytes = b""
    error: RemoteError | None = None


class ViewChanged(msgspec.Struct, frozen=True, kw_only=True, tag="view", tag_field="op"):
    """Broadcast by a node that changed the membership (joined, left, reaped a dead node)."""

    version: int
    sender: str


ClusterEnvelope = RemoteTell | RemoteAsk | RemoteReply | ViewChanged


# -- Membership as /info shows it --------------------------------------------------------------


class ClusterInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The cluster as this node sees it: `mode` "single" (no REDIS_URL: one node, local
    placement) or "cluster"."""

    mode: Literal["single", "cluster"]
    node_id: str
    nodes: list[str]
    version: int


# -- Membership views (actors/membership.py keeps one; storage/redis/membership.py reads it) --


@dataclass(frozen=True, slots=True)
class View:
    """The live nodes as of membership version `version` (sorted, no duplicates)."""

    version: int
    nodes: tuple[str, ...]

    @classmethod
    def of(cls, version: int, nodes: list[str] | tuple[str, ...] | set[str]) -> View:
        return cls(version, tuple(sorted(set(nodes))))


@dataclass(frozen=True, slots=True)
class Beat:
    """What the membership store answers: the view after this call, the nodes this call found
    expired (reported to this caller only), and whether this node had to be added back (it
    had been declared dead: its sessions and calls may have been cleaned up meanwhile)."""

    view: View
    dead: tuple[str, ...] = ()
    rejoined: bool = False


class TransportFull(Exception):
    """A cluster transport's outbound queue is full (backpressure)."""
