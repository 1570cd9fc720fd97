"""The actor system: virtual actors addressed by kind and key.

    system = ActorSystem(clock=LoopClock())
    system.register(RoomActor, lambda key, ctx: RoomActor(key, ctx, rooms=room_store))
    reply = await system.ref(RoomActor, room_id).ask(SendMessage(...), timeout=5)

Guarantees: one activation per (kind, key) on this node; one message at a time per actor, in
arrival order; bounded mailboxes (`tell` waits for room, `tell_nowait` raises MailboxFull);
asks always time out; a crash is logged, answered with ActorCrashed and the actor is rebuilt
from storage; actors idle for `idle_timeout` seconds (and with no pending timers) are
passivated: on_stop runs and they are dropped from memory until their next message.

In a cluster the placement names the one node that hosts each key and `remote` carries
messages there (actors/remote.py). A send that finds its node gone waits for the next view
and goes to the new owner; an ask that still cannot be served raises Unavailable with a retry
hint. Messages from other nodes, view changes and hand-over: actors/cluster_side.py.

Tracing (off unless `tracer` is set, see actors/activation.py MessageTracer): a message
carries the trace context of the code that sent it, locally in its envelope and to another
node as a W3C traceparent (actors/remote.py); messages a timer sends start no trace.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors.activation import Activation, ActorFactory, Envelope, MessageTracer
from actors.actor import Actor, ActorContext
from actors.clock import Clock, LoopClock
from actors.cluster_side import ClusterSide
from actors.errors import ActorError, ActorStopped, AskTimeout, MailboxFull, Unavailable
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
    handovers: int = 0  # activations stopped here because their key moved to another node
    forwarded: int = 0  # messages passed on to the owner after arriving here


@dataclass(frozen=True)
class Snapshot:
    """A point-in-time view for metrics."""

    live: dict[str, int] = field(default_factory=dict)  # by kind
    mailbox_depth: dict[str, int] = field(default_factory=dict)  # by kind
    processed: int = 0
    restarts: int = 0
    activations: int = 0
    passivations: int = 0
    handovers: int = 0
    forwarded: int = 0


# Seconds a tell keeps trying to reach an actor whose node is gone (covers the membership
# timeout, after which the key has a new owner).
REMOTE_RETRY_WINDOW = 8.0


class ActorSystem(ClusterSide):
    def __init__(self, *, clock: Clock | None = None, placement: Placement | None = None,
                 remote: RemoteDelivery | None = None, mailbox_size: int = 1000,
                 idle_timeout: float = 300.0, tracer: MessageTracer | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self.placement: Placement = placement or LocalPlacement()
        self.remote = remote
        # Traces messages (server/tracing.py installs one when tracing is configured); None:
        # messages carry no trace context and nothing is traced.
        self.tracer = tracer
        self.mailbox_size = mailbox_size
        self.idle_timeout = idle_timeout
        self.stats = RuntimeStats()
        self._factories: dict[str, tuple[type[Actor], ActorFactory]] = {}
        self._live: dict[tuple[str, str], Activation] = {}
        self._stopping: dict[tuple[str, str], asyncio.Task[None]] = {}  # passivating
        self._background: set[asyncio.Task[Any]] = set()  # sends waiting for room or a view
        self._closed = False
        self._view_event = asyncio.Event()  # set (and replaced) at each view change
        # Set by the cluster wiring: re-read the membership view now (a send found its node
        # gone, or another node has seen a newer view).
        self.refresh_view: Callable[[], None] | None = None

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

    @property
    def view_version(self) -> int:
        view = getattr(self.placement, "view", None)
        return view.version if view is not None else 0

    async def _deliver(self, ref: ActorRef, message: Any, reply: asyncio.Future[Any] | None,
                       wait_for_room: bool, deadline: float | None = None) -> None:
        self._check_open()
        if reply is None and self._remote_node(ref) is not None:
            await self._tell_remote(ref, message)
            return
        activation = self._activation(ref)
        envelope = Envelope(message, reply, deadline,
                            None if self.tracer is None else self.tracer.current())
        if activation.mailbox.full() and wait_for_room:
            activation.waiting_senders += 1
            try:
                await activation.mailbox.put(envelope)
            finally:
                activation.waiting_senders -= 1
            if activation.retired:  # it moved while we waited: what we put is stranded
                for stranded in activation.take_all():
                    self._forward(ref, stranded)
                return
        else:
            try:
                activation.mailbox.put_nowait(envelope)
            except asyncio.QueueFull:
                raise MailboxFull(f"{ref} mailbox is full ({self.mailbox_size})") from None
        activation.wake()

    async def _tell_remote(self, ref: ActorRef, message: Any, hops: int = 0) -> None:
        """Tell the owner on another node; when it is gone, wait for the view that gives the
        key a new owner (perhaps this node) and send there."""
        assert self.remote is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REMOTE_RETRY_WINDOW
        while True:
            node = self._remote_node(ref)
            if node is None:
                await self._deliver(ref, message, None, wait_for_room=True)
                return
            try:
                await self.remote.deliver(node, ref.kind, ref.key, message, hops)
                return
            except Unavailable:
                if not await self._next_view(deadline - loop.time()):
                    raise

    async def _next_view(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the membership view to change (asking for a
        fresh read first); False when it did not."""
        if timeout <= 0:
            return False
        waiter = self._view_event
        if self.refresh_view is not None:
            self.refresh_view()
        try:
            async with asyncio.timeout(timeout):
                await waiter.wait()
        except TimeoutError:
            return False
        return True

    def _deliver_nowait(self, ref: ActorRef, message: Any) -> None:
        self._put_nowait(ref, message, None if self.tracer is None else self.tracer.current())

    def _put_nowait(self, ref: ActorRef, message: Any, trace: object | None) -> None:
        """`_deliver_nowait` with the trace context the message carries given."""
        self._check_open()
        node = self._remote_node(ref)
        if node is not None:
            assert self.remote is not None
            self.remote.deliver_nowait(node, ref.kind, ref.key, message)
            return
        activation = self._activation(ref)
        try:
            activation.mailbox.put_nowait(Envelope(message, None, None, trace))
        except asyncio.QueueFull:
            raise MailboxFull(f"{ref} mailbox is full ({self.mailbox_size})") from None
        activation.wake()

    def _deliver_from_timer(self, ref: ActorRef, message: Any) -> None:
        # A timer's message starts no trace: the callback runs in the context the timer was
        # armed in (a message's span, long ended), and a timer that re-arms itself would
        # otherwise chain every later message into one endless trace.
        if self._closed or self._remote_node(ref) is not None:
            return  # moved: the new owner re-arms its timers from storage
        try:
            self._put_nowait(ref, message, None)
        except MailboxFull:
            # A timer must not be lost to a momentarily full mailbox: wait for room.
            self._spawn(ref.tell(message))

    def _spawn(self, coro: Any, trace: object | None = None) -> None:
        """Run `coro` in a background task; with a tracer, in trace context `trace` (None:
        none), not in whatever context the caller happens to run."""
        loop = asyncio.get_running_loop()
        if self.tracer is None:
            task = loop.create_task(coro)
        else:
            with self.tracer.use(trace):
                task = loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a background send failed: %s", task.exception())

    async def _ask(self, ref: ActorRef, message: Any, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (node := self._remote_node(ref)) is not None:
            assert self.remote is not None
            remaining = deadline - loop.time()
            try:
                return await self.remote.ask(node, ref.kind, ref.key, message,
                                             max(remaining, 0.001))
            except Unavailable:
                # Its node is gone or leaving: the next view names a new owner.
                if not await self._next_view(deadline - loop.time() - 0.05):
                    raise
        reply: asyncio.Future[Any] = loop.create_future()
        try:
            async with asyncio.timeout_at(deadline):
                await self._deliver(ref, message, reply, wait_for_room=True, deadline=deadline)
                return await reply
        except TimeoutError:
            raise AskTimeout(f"{ref} did not answer {type(message).__name__} within "
                             f"{timeout}s") from None

    # -- passivation and shutdown ------------------------------------------------------

    def _went_idle(self, activation: Activation) -> None:
        # Called by the drain task as it ends: only new mail would make it busy.
        if self._closed or not activation.mailbox.empty() or activation.waiting_senders:
            return
        if activation.context.stop_requested and not activation.context.has_timers \
                and not activation.piping:
            # The actor asked to go (context.stop_after): now, not after the idle timeout.
            # The drain task ends right after this call, so nothing is in hand.
            self._drop(activation)
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
        self._drop(activation)

    def _drop(self, activation: Activation) -> None:
        """Unregister an idle activation and run its on_stop in a task of its own (a new
        activation of the key waits for that before loading)."""
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
            tasks = _working(self._live.values())
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
        # Drain tasks and piped work; a piped outcome starts a drain task of its own.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (working := _working(live)) and (left := deadline - loop.time()) > 0:
            await asyncio.wait(working, timeout=left)
        for task in working:
            task.cancel()
        await asyncio.gather(*working, return_exceptions=True)
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
                        passivations=self.stats.passivations,
                        handovers=self.stats.handovers, forwarded=self.stats.forwarded)


def _working(activations: Iterable[Activation]) -> list[asyncio.Future[Any]]:
    """The drain tasks running and the work piped (context.pipe_to_self) of `activations`."""
    working: list[asyncio.Future[Any]] = []
    for activation in activations:
        if activation.task is not None and not activation.task.done():
            working.append(activation.task)
        working.extend(activation.context.pipes)
    return working
