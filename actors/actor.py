"""The base class of every actor kind.

An actor owns its state; nothing else reads or writes it. The runtime calls `on_start` once
per activation (load state through the ports handed to the constructor), then `receive` for
one message at a time in arrival order, and `on_stop` when the actor is passivated or the
system stops. Raise `actors.errors.Rejected` to refuse a message; any other exception is a
crash: the asker gets `ActorCrashed` and the actor is rebuilt from storage.

An actor need not wait for slow I/O with its mailbox held: `context.pipe_to_self` runs an
awaitable beside it and hands its outcome back as a message (handled before the mailbox's
next one), and `context.defer` answers the message in hand later. A RoomActor so keeps taking
messages while the earlier ones are being committed (actors/room.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from actors.clock import Clock, Timer
    from actors.ref import ActorRef
    from actors.system import ActorSystem


class Promise:
    """The answer to a message the actor took over with `ActorContext.defer`: resolve or
    reject it once (later calls do nothing). A tell has no asker: answering it does nothing."""

    __slots__ = ("_open", "_reply")

    def __init__(self, reply: asyncio.Future[Any] | None, open_: set[Promise]) -> None:
        self._reply = reply
        self._open = open_

    def resolve(self, value: Any) -> None:
        self._open.discard(self)
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(value)

    def reject(self, error: BaseException) -> None:
        self._open.discard(self)
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)


class ActorContext:
    """What an actor may use of the runtime: its own address, the system, time and timers,
    work beside the mailbox (`pipe_to_self`) and answers given later (`defer`)."""

    def __init__(self, system: ActorSystem, ref: ActorRef, clock: Clock) -> None:
        self.system = system
        self.self_ref = ref
        self.clock = clock
        self.log = logging.getLogger(f"hubbub.actors.{ref.kind}")
        self._timers: dict[int, Timer] = {}
        self._next_timer = 0
        self.stop_requested = False  # set by stop_after(); reset before each message
        # Set by the activation around each message: the asker's reply, and whether the
        # actor took it over (defer).
        self.in_hand: asyncio.Future[Any] | None = None
        self.deferred = False
        # Made on first use: most actors never defer nor pipe, and an idle actor must stay
        # small (a connection's UserActor is one).
        self._promises: set[Promise] | None = None  # deferred, not answered yet
        self._pipes: set[asyncio.Future[Any]] | None = None  # piped work not done yet
        # Set by the activation: queues a piped outcome for this actor.
        self.piped: Callable[[Any], None] | None = None

    @property
    def pipes(self) -> Collection[asyncio.Future[Any]]:
        """The work piped to this actor and still running."""
        return self._pipes or ()

    def defer(self) -> Promise:
        """Answer the message in hand later, through the Promise returned, instead of with
        `receive`'s return value. Unanswered promises are rejected with ActorCrashed when the
        actor crashes, and with ActorStopped when its activation stops."""
        self.deferred = True
        if self._promises is None:
            self._promises = set()
        promise = Promise(self.in_hand, self._promises)
        self._promises.add(promise)
        return promise

    def reject_promises(self, error: Callable[[], BaseException]) -> None:
        """Reject every promise not answered yet, each with an exception of its own."""
        for promise in list(self._promises or ()):
            promise.reject(error())

    def pipe_to_self(self, work: Awaitable[Any],
                     to_message: Callable[[asyncio.Future[Any]], Any]) -> asyncio.Future[Any]:
        """Run `work` beside the mailbox (in the caller's context: its trace); when it ends,
        this actor handles `to_message(the finished future)`, ahead of its mailbox. Piped
        outcomes are handled in the order their work ends. While work is piped the actor is
        not passivated, and when it moves to another node its activation retires only once
        every outcome was handled, so what it started it also finishes. Returns the future
        of `work` (to wait on, not to take the outcome from: that comes as the message)."""
        future = asyncio.ensure_future(work)
        if self._pipes is None:
            self._pipes = set()
        pipes = self._pipes
        pipes.add(future)

        def done(finished: asyncio.Future[Any]) -> None:
            pipes.discard(finished)
            if self.piped is not None:
                self.piped(to_message(finished))

        future.add_done_callback(done)
        return future

    def stop_after(self) -> None:
        """Passivate this actor once the current message is handled and its mailbox is
        empty, without waiting for the idle timeout (unless timers are pending): for an
        activation that found nothing to hold (no such room, no such call), so that a refused
        message leaves nothing in memory. Applies to the current message only."""
        self.stop_requested = True

    def schedule(self, delay: float, message: Any) -> int:
        """Tell this actor `message` after `delay` seconds; returns an id for `cancel`.

        An actor with pending timers is not passivated, so a scheduled message always arrives
        (unless cancelled, or the system stops).
        """
        self._next_timer += 1
        timer_id = self._next_timer

        def fire() -> None:
            if self._timers.pop(timer_id, None) is not None:
                self.system._deliver_from_timer(self.self_ref, message)

        self._timers[timer_id] = self.clock.call_later(delay, fire)
        return timer_id

    def cancel(self, timer_id: int) -> None:
        timer = self._timers.pop(timer_id, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    @property
    def has_timers(self) -> bool:
        return bool(self._timers)


class Actor:
    # Seconds without messages (and without timers) before the actor is passivated; None
    # uses the system default.
    idle_timeout: ClassVar[float | None] = None

    def __init__(self, key: str, context: ActorContext) -> None:
        self.key = key
        self.context = context

    async def on_start(self) -> None:
        """Load state. Runs before the first message of each activation (and after a crash)."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an `ask` (ignored for tell)."""
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Flush anything worth keeping. Runs on passivation and on system stop."""
