"""After a node died (or left with sockets still recorded): tell the actors that depend on
it. Runs on the one node the membership store reported the death to.

Each affected UserActor hears NodeLeft and drops that node's sessions (its user goes offline
after the grace period unless they reconnected elsewhere; watchers are told); each live call
with a participant on that node hears NodeLeft and that participant leaves (or the call ends
with a reason). The records are forgotten first, so an actor that (re)activates meanwhile
loads sessions without the dead node's.
"""

from __future__ import annotations

import logging

from actors.call import CallActor
from actors.errors import ActorError
from actors.ref import ActorRef
from actors.system import ActorSystem
from actors.user import UserActor
from protocols.cluster import NodeLeft
from server.cluster.ports import NodeCalls, NodeSessions

log = logging.getLogger("hubbub.cluster")


class NodeReaper:
    def __init__(self, system: ActorSystem, sessions: NodeSessions, calls: NodeCalls) -> None:
        self._system = system
        self._sessions = sessions
        self._calls = calls

    async def reap(self, nodes: tuple[str, ...]) -> None:
        for node in nodes:
            users = await self._sessions.forget_node(node)
            calls = await self._calls.live_calls_on(node)
            log.info("cleaning up after a node that left", extra={
                "left_node": node, "users": len(users), "calls": len(calls)})
            gone = NodeLeft(node_id=node)
            for user_id in sorted(users):
                await self._tell(self._system.ref(UserActor, user_id), gone)
            for call_id in calls:
                await self._tell(self._system.ref(CallActor, call_id), gone)

    async def _tell(self, ref: ActorRef, message: NodeLeft) -> None:
        try:
            await ref.tell(message)
        except ActorError:
            log.warning("%s did not hear that node %s left", ref, message.node_id)
