"""ActorRef: the only handle to an actor that is ever passed around."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.system import ActorSystem


class ActorRef:
    """The address of a virtual actor (kind + key). Always valid: the runtime activates the
    actor on its first message, wherever placement puts it."""

    __slots__ = ("_system", "key", "kind")

    def __init__(self, system: ActorSystem, kind: str, key: str) -> None:
        self._system = system
        self.kind = kind
        self.key = key

    async def tell(self, message: Any) -> None:
        """Send and forget. Waits while the mailbox is full (backpressure)."""
        await self._system._deliver(self, message, reply=None, wait_for_room=True)

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting; raises MailboxFull when the mailbox is full."""
        self._system._deliver_nowait(self, message)

    async def ask(self, message: Any, timeout: float = 5.0) -> Any:
        """Send and await the reply. Raises AskTimeout, Rejected (the actor refused) or
        ActorCrashed (the actor failed on this message and was restarted)."""
        return await self._system._ask(self, message, timeout)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and (other.kind, other.key) == (self.kind, self.key)

    def __hash__(self) -> int:
        return hash((self.kind, self.key))

    def __repr__(self) -> str:
        return f"ActorRef({self.kind}/{self.key})"
