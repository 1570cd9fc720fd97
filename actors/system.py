"""The actor system: virtual actors addressed by kind and key.

    system = ActorSystem(clock=LoopClock())
    system.register(RoomActor, lambda key, ctx: RoomActor(key, ctx, rooms=room_store))
    reply = await system.ref(RoomActor, room_id).ask(SendMessage(...), timeout=5)

Guarantees: one activation per (kind, key) on this node; one message at a time per actor, in
arrival order; bounded mailboxes (`tell` waits for room, `tell_nowait` raises MailboxFull);
asks always time out; a crash is logged, answered with ActorCrashed and the actor is rebuilt
from storage; actors idle for `idle_timeout` seconds (and with no pending timers) are
passivated: on_stop runs and they are dropped from memory until their next message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors.activation import Activation, ActorFactory, Envelope
from actors.actor import Actor, ActorContext
from actors.clock import Clock, LoopClock
from actors.errors import ActorError, ActorStopped, AskTimeout, MailboxFull
from actors.placement import LocalPlacement, Placement, RemoteDelivery
from actors.ref import ActorRef

log = logging.getLogger("hubbub.actors")
A = TypeVar("A", bound=Actor)


@dataclass
class RuntimeStats:
    processed: int = 0
    restarts: int = 0
    activations: int = 0  # ever created
    passivations: int = 0


@dataclass(frozen=True)
class Snapshot:
    """A point-in-time view for metrics."""

    live: dict[str, int] = field(default_factory=dict)  # by kind
    mailbox_depth: dict[str, int] = field(default_factory=dict)  # by kind
    processed: int = 0
    restarts: int = 0
    activations: int = 0
    passivations: int = 0


class ActorSystem:
    def __init__(self, *, clock: Clock | None = None, placement: Placement | None = None,
                 remote: RemoteDelivery | None = None, mailbox_size: int = 1000,
                 idle_timeout: float = 300.0) -> None:
        self.clock: Clock = clock or LoopClock()
        self.placement: Placement = placement or LocalPlacement()
        self.remote = remote
        self.mailbox_size = mailbox_size
        self.idle_timeout = idle_timeout
        self.stats = RuntimeStats()
        self._factories: dict[str, tuple[type[Actor], ActorFactory]] = {}
        self._live: dict[tuple[str, str], Activation] = {}
        self._stopping: dict[tuple[str, str], asyncio.Task[None]] = {}  # passivating
        self._background: set[asyncio.Task[None]] = set()  # timer tells waiting for room
        self._closed = False

    # -- registration and addressing --------------------------------------------------

    @staticmethod
    def kind_of(actor_class: type[Actor]) -> str:
        return actor_class.__name__

    def register(self, actor_class: type[A], factory: ActorFactory | None = None) -> None:
        """Declare an actor kind; `factory(key, context)` builds an instance (hand ports in
        through it). Without a factory the class is called with (key, context)."""
        self._factories[self.kind_of(actor_class)] = (actor_class, factory or actor_class)

    def ref(self, actor_class: type[Actor], key: str) -> ActorRef:
        kind = self.kind_of(actor_class)
        if kind not in self._factories:
            raise ActorError(f"actor kind {kind} is not registered")
        return ActorRef(self, kind, key)

    def is_live(self, ref: ActorRef) -> bool:
        return (ref.kind, ref.key) in self._live

    # -- delivery ----------------------------------------------------------------------

    def _activation(self, ref: ActorRef) -> Activation:
        slot = (ref.kind, ref.key)
        activation = self._live.get(slot)
        if activation is None:
            actor_class, factory = self._factories[ref.kind]
            idle = actor_class.idle_timeout if actor_class.idle_timeout is not None \
                else self.idle_timeout
            activation = Activation(self, ActorContext(self, ref, self.clock), factory,
                                    self.mailbox_size, idle, self._stopping.get(slot))
            self._live[slot] = activation
            self.stats.activations += 1
        return activation

    def _check_open(self) -> None:
        if self._closed:
            raise ActorStopped("the actor system is stopped")

    def _remote_node(self, ref: ActorRef) -> str | None:
        node = self.placement.node_for(ref.kind, ref.key)
        if node == self.placement.local_node:
            return None
        if self.remote is None:
            raise ActorError(f"{ref} is placed on {node} but no remote delivery is configured")
        return node

    async def _deliver(self, ref: ActorRef, message: Any, reply: asyncio.Future[Any] | None,
                       wait_for_room: bool) -> None:
        self._check_open()
        node = self._remote_node(ref)
        if node is not None:
            assert self.remote is not None and reply is None
            await self.remote.deliver(node, ref.kind, ref.key, message)
            return
        activation = self._activation(ref)
        envelope = Envelope(message, reply)
        if activation.mailbox.full() and wait_for_room:
            activation.waiting_senders += 1
            try:
                await activation.mailbox.put(envelope)
            finally:
                activation.waiting_senders -= 1
        else:
            try:
                activation.mailbox.put_nowait(envelope)
            except asyncio.QueueFull:
                raise MailboxFull(f"{ref} mailbox is full ({self.mailbox_size})") from None
        activation.wake()

    def _deliver_nowait(self, ref: ActorRef, message: Any) -> None:
        self._check_open()
        if self._remote_node(ref) is not None:
            raise ActorError("tell_nowait cannot reach a remote actor; use tell")
        activation = self._activation(ref)
        try:
            activation.mailbox.put_nowait(Envelope(message))
        except asyncio.QueueFull:
            raise MailboxFull(f"{ref} mailbox is full ({self.mailbox_size})") from None
        activation.wake()

    def _deliver_from_timer(self, ref: ActorRef, message: Any) -> None:
        if self._closed:
            return
        try:
            self._deliver_nowait(ref, message)
        except MailboxFull:
            # A timer must not be lost to a momentarily full mailbox: wait for room.
            task = asyncio.get_running_loop().create_task(ref.tell(message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _ask(self, ref: ActorRef, message: Any, timeout: float) -> Any:
        node = self._remote_node(ref)
        if node is not None:
            assert self.remote is not None
            return await self.remote.ask(node, ref.kind, ref.key, message, timeout)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._deliver(ref, message, reply, wait_for_room=True)
                return await reply
        except TimeoutError:
            raise AskTimeout(f"{ref} did not answer {type(message).__name__} within "
                             f"{timeout}s") from None

    # -- passivation and shutdown ------------------------------------------------------

    def _went_idle(self, activation: Activation) -> None:
        # Called by the drain task as it ends: only new mail would make it busy.
        if self._closed or not activation.mailbox.empty() or activation.waiting_senders:
            return
        activation.idle_timer = self.clock.call_later(
            activation.idle_timeout, lambda: self._passivate(activation))

    def _passivate(self, activation: Activation) -> None:
        activation.idle_timer = None
        if self._closed or activation.busy:
            return
        if activation.context.has_timers:
            self._went_idle(activation)  # a pending timer keeps it alive; look again later
            return
        slot = (activation.ref.kind, activation.ref.key)
        if self._live.get(slot) is not activation:
            return
        del self._live[slot]
        self.stats.passivations += 1
        task = asyncio.get_running_loop().create_task(activation.stop())
        self._stopping[slot] = task
        task.add_done_callback(lambda t: self._stopping.pop(slot, None)
                               if self._stopping.get(slot) is t else None)

    async def settled(self) -> None:
        """Wait until no actor is processing and no passivation is in progress (tests and
        shutdown use this instead of guessing with sleeps)."""
        while True:
            tasks = [a.task for a in self._live.values() if a.task and not a.task.done()]
            tasks += self._stopping.values()
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Refuse new messages, let mailboxes drain (up to `timeout`), then on_stop every
        live actor."""
        self._closed = True
        live = list(self._live.values())
        self._live.clear()
        drains = [a.task for a in live if a.task is not None and not a.task.done()]
        if drains:
            _, pending = await asyncio.wait(drains, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*(a.stop() for a in live), *self._stopping.values(),
                             *self._background, return_exceptions=True)

    def snapshot(self) -> Snapshot:
        live: Counter[str] = Counter()
        depth: Counter[str] = Counter()
        for (kind, _), activation in self._live.items():
            live[kind] += 1
            depth[kind] += activation.mailbox.qsize()
        return Snapshot(live=dict(live), mailbox_depth=dict(depth),
                        processed=self.stats.processed, restarts=self.stats.restarts,
                        activations=self.stats.activations,
                        passivations=self.stats.passivations)
