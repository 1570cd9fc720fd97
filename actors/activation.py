"""One live activation of a virtual actor: its mailbox, its drain task and its idle timer.

The drain task exists only while there are messages: when the mailbox empties the task ends
and an idle timer is armed; an idle actor therefore holds no task, just its instance.

Tracing: with a MessageTracer installed on the system (server/tracing.py, when OpenTelemetry
is configured), a message sent inside a trace carries its sender's trace context in its
envelope, and is handled inside a span `actor.<Kind>.<MessageType>`, child of that context
and current while `receive` runs (so the Postgres and Redis calls it makes are its children).
Without one, envelopes carry nothing and handling pays one `is None` test.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from actors.actor import Actor, ActorContext
from actors.errors import ActorCrashed, ActorStopped, Rejected
from actors.mailbox import Mailbox
from protocols.cluster import Activate

if TYPE_CHECKING:
    from actors.clock import Timer
    from actors.ref import ActorRef
    from actors.system import ActorSystem

log = logging.getLogger("hubbub.actors")
ActorFactory = Callable[[str, ActorContext], Actor]


class MessageSpan(Protocol):
    """One message being handled, traced (MessageTracer.handling)."""

    def rejected(self, code: str) -> None:
        """The actor refused the message (Rejected): an answer, not a failure."""
        ...

    def crashed(self, exc: BaseException) -> None:
        """The actor failed on the message: recorded on the span, which is marked an error."""
        ...

    def end(self) -> None:
        """Handling is over: end the span and make the previous trace context current again.
        Called once, in the task that called `handling`."""
        ...


class MessageTracer(Protocol):
    """Traces actor messages; the runtime calls it only when one is installed
    (`ActorSystem.tracer`). A trace context is opaque to the runtime: it carries it in
    envelopes and hands it back."""

    def current(self) -> object | None:
        """The caller's trace context, to travel with a message it sends; None outside any
        trace (such a message is handled untraced)."""
        ...

    def handling(self, ref: ActorRef, message: object, parent: object) -> MessageSpan:
        """Start the span of `ref` handling `message`, child of `parent` (a context from
        `current` or `from_traceparent`), and make it current."""
        ...

    def use(self, context: object | None) -> AbstractContextManager[None]:
        """Make `context` (None: no trace at all) the current trace context within the block;
        tasks created there keep it."""
        ...

    def traceparent(self) -> str | None:
        """The current trace context as a W3C `traceparent` (None outside any trace), for the
        envelopes that carry a message to another node."""
        ...

    def from_traceparent(self, traceparent: str) -> object | None:
        """The trace context a `traceparent` from another node names (None: malformed)."""
        ...


@dataclass(slots=True)
class Envelope:
    message: Any
    reply: asyncio.Future[Any] | None = None
    deadline: float | None = None  # loop time after which the asker no longer waits
    trace: object | None = None  # the sender's trace context (MessageTracer; None: untraced)


class Activation:
    def __init__(self, system: ActorSystem, context: ActorContext, factory: ActorFactory,
                 mailbox_size: int, idle_timeout: float,
                 predecessor: asyncio.Task[None] | None = None) -> None:
        self.system = system
        self.context = context
        self.ref = context.self_ref
        self.factory = factory
        self.mailbox: Mailbox[Envelope] = Mailbox(mailbox_size)
        self.idle_timeout = idle_timeout
        self.actor: Actor | None = None  # None until started, and again after a crash
        self.task: asyncio.Task[None] | None = None
        self.idle_timer: Timer | None = None
        self.waiting_senders = 0  # tells blocked on a full mailbox
        self.restarts = 0
        # Handed over: this node no longer owns the key. The message in hand finishes; the
        # rest of the mailbox is forwarded to the new owner (`retired` once that is done).
        self.moving = False
        self.retired = False
        # A passivated predecessor still flushing in on_stop: wait before loading state.
        self._predecessor = predecessor
        # Outcomes of work the actor piped to itself (context.pipe_to_self), to handle
        # before the mailbox's next message.
        self.outcomes: collections.deque[Any] | None = None  # made on first use
        self._waiting: asyncio.Future[None] | None = None  # the drain task, for either
        self.stopped = False
        context.piped = self._piped

    @property
    def busy(self) -> bool:
        return (self.task is not None and not self.task.done()) or not self.mailbox.empty() \
            or self.waiting_senders > 0 or self.piping

    @property
    def piping(self) -> bool:
        """Work piped to itself is running, or its outcome is still to be handled."""
        return bool(self.context.pipes or self.outcomes)

    def _piped(self, message: Any) -> None:
        if self.stopped:
            return  # on_stop ran: nothing is left to hand it to
        if self.outcomes is None:
            self.outcomes = collections.deque()
        self.outcomes.append(message)
        self.wake()

    def wake(self) -> None:
        """Make sure a drain task is processing the mailbox."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)  # the drain task waits for work piped: here is more
            return
        if self.task is None or self.task.done():
            tracer = self.system.tracer
            if tracer is None:
                self.task = asyncio.get_running_loop().create_task(
                    self._drain(), name=f"actor:{self.ref.kind}/{self.ref.key}")
                return
            # Not in the trace of whoever woke it: each message brings its own (or none).
            with tracer.use(None):
                self.task = asyncio.get_running_loop().create_task(
                    self._drain(), name=f"actor:{self.ref.kind}/{self.ref.key}")

    async def _drain(self) -> None:
        while True:
            if self.outcomes:  # what the actor started, it finishes first (and when moving)
                await self._handle(Envelope(self.outcomes.popleft()))
                continue
            if not self.moving and not self.mailbox.empty():
                envelope = self.mailbox.get_nowait()
                await self._handle(envelope)
                self.system.stats.processed += 1
                continue
            if not self.context.pipes:
                break
            # Work piped is still running: wait for its outcome (or new mail) here rather
            # than end and have a new task started for it, a task per message more.
            self._waiting = asyncio.get_running_loop().create_future()
            try:
                await self._waiting
            finally:
                self._waiting = None
        # Nothing piped is left (the loop ends only then), so a moved activation can go.
        if self.moving:
            self.system._retire(self)
        else:
            self.system._went_idle(self)

    def take_all(self) -> list[Envelope]:
        """Empty the mailbox (a retiring activation forwards what it had not handled)."""
        taken = []
        while not self.mailbox.empty():
            taken.append(self.mailbox.get_nowait())
        return taken

    async def _start(self) -> Actor:
        if self._predecessor is not None:
            await asyncio.shield(self._predecessor)
            self._predecessor = None
        actor = self.factory(self.ref.key, self.context)
        await actor.on_start()
        self.actor = actor
        return actor

    async def _handle(self, envelope: Envelope) -> None:
        reply = envelope.reply
        self.context.stop_requested = False  # an earlier message's wish does not carry over
        self.context.in_hand = reply
        self.context.deferred = False
        span: MessageSpan | None = None
        if envelope.trace is not None and (tracer := self.system.tracer) is not None:
            span = tracer.handling(self.ref, envelope.message, envelope.trace)
        try:
            actor = self.actor or await self._start()
            # Activate only makes sure the actor is live (on_start re-armed its timers).
            result = None if isinstance(envelope.message, Activate) else \
                await actor.receive(envelope.message)
        except Rejected as refusal:
            if span is not None:
                span.rejected(refusal.code)
            if reply is not None and not reply.done():
                reply.set_exception(refusal)
        except Exception as exc:  # supervision: a crash is contained to this actor
            if span is not None:
                span.crashed(exc)
            self._crashed(envelope, exc)
        else:
            if reply is not None and not reply.done() and not self.context.deferred:
                reply.set_result(result)
        finally:
            self.context.in_hand = None
            if span is not None:
                span.end()

    def _crashed(self, envelope: Envelope, exc: Exception) -> None:
        log.exception("actor %s crashed on %s; restarting from storage", self.ref,
                      type(envelope.message).__name__,
                      extra={"actor": f"{self.ref.kind}/{self.ref.key}"})
        self.restarts += 1
        self.system.stats.restarts += 1
        self.context.stop_requested = False  # the next message starts a fresh instance
        # Drop the instance (its state may be half-updated) and its timers; the next message
        # builds a fresh one whose on_start reloads from storage.
        self.actor = None
        self.context.cancel_all()
        # What it deferred, it can no longer answer; outcomes of what it piped reach the
        # fresh instance, which ignores what it does not know.
        self.context.reject_promises(lambda: _crash(f"{self.ref} failed before answering", exc))
        if envelope.reply is not None and not envelope.reply.done():
            envelope.reply.set_exception(_crash(f"{self.ref} failed", exc))

    async def stop(self) -> None:
        """Flush (on_stop) a started actor. Call only once it is idle and unregistered."""
        self.stopped = True
        self.context.reject_promises(lambda: ActorStopped(f"{self.ref} stopped before answering"))
        self.context.cancel_all()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        actor, self.actor = self.actor, None
        if actor is None:
            return
        try:
            await actor.on_stop()
        except Exception:
            log.exception("actor %s failed in on_stop", self.ref)


def _crash(what: str, exc: Exception) -> ActorCrashed:
    # The cause tells the asker's edge what failed (storage unavailable, or a bug).
    crash = ActorCrashed(f"{what}: {type(exc).__name__}: {exc}")
    crash.__cause__ = exc
    return crash
