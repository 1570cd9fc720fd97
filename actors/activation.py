"""One live activation of a virtual actor: its mailbox, its drain task and its idle timer.

The drain task exists only while there are messages: when the mailbox empties the task ends
and an idle timer is armed; an idle actor therefore holds no task, just its instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.actor import Actor, ActorContext
from actors.errors import ActorCrashed, Rejected
from actors.mailbox import Mailbox
from protocols.cluster import Activate

if TYPE_CHECKING:
    from actors.clock import Timer
    from actors.system import ActorSystem

log = logging.getLogger("hubbub.actors")
ActorFactory = Callable[[str, ActorContext], Actor]


@dataclass(slots=True)
class Envelope:
    message: Any
    reply: asyncio.Future[Any] | None = None
    deadline: float | None = None  # loop time after which the asker no longer waits


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

    @property
    def busy(self) -> bool:
        return (self.task is not None and not self.task.done()) or not self.mailbox.empty() \
            or self.waiting_senders > 0

    def wake(self) -> None:
        """Make sure a drain task is processing the mailbox."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"actor:{self.ref.kind}/{self.ref.key}")

    async def _drain(self) -> None:
        while not self.mailbox.empty() and not self.moving:
            envelope = self.mailbox.get_nowait()
            await self._handle(envelope)
            self.system.stats.processed += 1
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
        try:
            actor = self.actor or await self._start()
            # Activate only makes sure the actor is live (on_start re-armed its timers).
            result = None if isinstance(envelope.message, Activate) else \
                await actor.receive(envelope.message)
        except Rejected as refusal:
            if reply is not None and not reply.done():
                reply.set_exception(refusal)
        except Exception as exc:  # supervision: a crash is contained to this actor
            self._crashed(envelope, exc)
        else:
            if reply is not None and not reply.done():
                reply.set_result(result)

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
        if envelope.reply is not None and not envelope.reply.done():
            crash = ActorCrashed(f"{self.ref} failed: {type(exc).__name__}: {exc}")
            crash.__cause__ = exc
            envelope.reply.set_exception(crash)

    async def stop(self) -> None:
        """Flush (on_stop) a started actor. Call only once it is idle and unregistered."""
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
