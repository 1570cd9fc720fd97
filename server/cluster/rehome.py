"""What this node's sockets need when the view changes or this node rejoins.

An actor only runs when a message arrives. A UserActor of a connected user must keep running
(its heartbeat keeps their presence live) and so must the CallActor of a call in progress
(ring timeout, liveness). When the view moves such an actor away from a node that died, no
handover wakes it on its new owner, so the nodes holding the sockets do: after every view
change, each node tells `Activate` to the UserActors of its connected users and the
CallActors of its sockets' calls whose owner changed. The new activation reloads its state
(sessions, call record) from storage.

A node that was declared dead while it was only slow (its heartbeats late) finds on its
return that its session records were forgotten: it records its sockets again and tells their
UserActors, so its users are online again.
"""

from __future__ import annotations

import logging

from actors.call import CallActor
from actors.errors import ActorError
from actors.ref import ActorRef
from actors.rendezvous import View, owner
from actors.system import ActorSystem
from actors.user import UserActor
from protocols.cluster import Activate
from protocols.user_messages import SessionOpened
from server.gateway.connections import Gateway

log = logging.getLogger("hubbub.cluster")


def moved(old: View, new: View, kind: str, key: str) -> bool:
    if not old.nodes or not new.nodes:
        return False
    return owner(old.nodes, kind, key) != owner(new.nodes, kind, key)


class Rehomer:
    def __init__(self, system: ActorSystem, gateway: Gateway) -> None:
        self._system = system
        self._gateway = gateway

    def dependents(self, old: View, new: View) -> list[ActorRef]:
        """The actors this node's sockets depend on whose owner changed from old to new."""
        users = {conn.user_id for conn in self._gateway.connections.values()}
        calls = {call for conn in self._gateway.connections.values() for call in conn.calls}
        user_kind = self._system.kind_of(UserActor)
        call_kind = self._system.kind_of(CallActor)
        refs = [self._system.ref(UserActor, u) for u in sorted(users)
                if moved(old, new, user_kind, u)]
        refs += [self._system.ref(CallActor, c) for c in sorted(calls)
                 if moved(old, new, call_kind, c)]
        return refs

    async def wake(self, refs: list[ActorRef]) -> None:
        for ref in refs:
            try:
                await ref.tell(Activate())
            except ActorError:
                log.info("%s not woken after the view change", ref)

    async def rejoined(self) -> None:
        """Record this node's sockets again and tell their UserActors."""
        gw = self._gateway
        records = gw.sessions_store
        for conn in list(gw.connections.values()):
            try:
                if records is not None:
                    await records.add(conn.user_id, conn.sid, gw.node_id)
                await self._system.ref(UserActor, conn.user_id).tell(
                    SessionOpened(session_id=conn.sid, node_id=gw.node_id))
            except Exception:
                log.warning("session %s not recorded again after rejoining", conn.sid,
                            exc_info=True)
