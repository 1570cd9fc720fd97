"""The base class of every actor kind.

An actor owns its state; nothing else reads or writes it. The runtime calls `on_start` once
per activation (load state through the ports handed to the constructor), then `receive` for
one message at a time in arrival order, and `on_stop` when the actor is passivated or the
system stops. Raise `actors.errors.Rejected` to refuse a message; any other exception is a
crash: the asker gets `ActorCrashed` and the actor is rebuilt from storage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from actors.clock import Clock, Timer
    from actors.ref import ActorRef
    from actors.system import ActorSystem


class ActorContext:
    """What an actor may use of the runtime: its own address, the system, time and timers."""

    def __init__(self, system: ActorSystem, ref: ActorRef, clock: Clock) -> None:
        self.system = system
        self.self_ref = ref
        self.clock = clock
        self.log = logging.getLogger(f"hubbub.actors.{ref.kind}")
        self._timers: dict[int, Timer] = {}
        self._next_timer = 0
        self.stop_requested = False  # set by stop_after(); reset before each message

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
