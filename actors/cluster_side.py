"""The part of the actor runtime (actors/system.py) that only a cluster uses: messages from
other nodes, view changes and hand-over.

A message from another node is delivered here when this node owns its key, and passed on
otherwise (after catching up with a newer view the sender knew of). When the view changes,
every local activation whose key moved is handed over: it finishes the message in hand and
the work it piped to itself (a room's messages being committed are pushed and acked), then
forwards the rest of its mailbox to the new owner, runs on_stop and, if it had timers to
keep, tells the new owner to activate.

`ClusterSide` is a base of `ActorSystem`; it works on the system's own state (the live
activations, the stats, the remote delivery), declared below for the reader and the type
checker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.activation import Activation, Envelope
from actors.errors import ActorError, MailboxFull, Unavailable
from actors.ref import ActorRef
from actors.remote import MAX_HOPS
from protocols.cluster import Activate

if TYPE_CHECKING:
    from actors.placement import RemoteDelivery
    from actors.system import RuntimeStats

log = logging.getLogger("hubbub.actors")
# Seconds an inbound ask from another node may wait when it carries no deadline of its own.
DEFAULT_FORWARD_TIMEOUT = 5.0


class ClusterSide:
    remote: RemoteDelivery | None
    stats: RuntimeStats
    mailbox_size: int
    refresh_view: Callable[[], None] | None
    _factories: dict[str, Any]
    _live: dict[tuple[str, str], Activation]
    _stopping: dict[tuple[str, str], asyncio.Task[None]]
    _closed: bool
    _view_event: asyncio.Event

    def undelivered(self, kind: str, key: str, message: Any) -> None:
        """A tell sent without waiting reached no node (its node is gone): send it again
        once the view names the key's new owner."""
        if not self._closed and kind in self._factories:
            self._spawn(self._tell_remote(ActorRef(self, kind, key), message))

    def accept_remote(self, kind: str, key: str, message: Any,
                      reply: asyncio.Future[Any] | None, view: int, hops: int,
                      trace: object | None = None) -> None:
        """A message from another node (actors.remote.LocalHost), sent in trace context
        `trace` (None: untraced). Delivered here when this node owns the key; otherwise
        passed on, after re-reading the view when the sender's was newer. Raises
        ActorStopped / MailboxFull (the router answers the asker)."""
        self._check_open()
        if kind not in self._factories:
            raise ActorError(f"actor kind {kind} is not registered")
        ref = ActorRef(self, kind, key)
        if self._remote_node(ref) is None:
            if reply is None:
                try:
                    self._put_nowait(ref, message, trace)
                except MailboxFull:
                    self._spawn(ref.tell(message), trace)  # wait for room rather than drop
                return
            activation = self._activation(ref)
            try:
                activation.mailbox.put_nowait(Envelope(
                    message, reply, asyncio.get_running_loop().time() + DEFAULT_FORWARD_TIMEOUT,
                    trace))
            except asyncio.QueueFull:
                raise MailboxFull(f"{ref} mailbox is full ({self.mailbox_size})") from None
            activation.wake()
            return
        self.stats.forwarded += 1
        self._spawn(self._pass_on(ref, message, reply, view, hops), trace)

    async def _pass_on(self, ref: ActorRef, message: Any, reply: asyncio.Future[Any] | None,
                       view: int, hops: int) -> None:
        if view > self.view_version:
            await self._next_view(1.0)  # the sender knows a newer view: catch up first
        if reply is None:
            if hops >= MAX_HOPS:
                log.warning("dropping %s for %s after %d hops", type(message).__name__, ref,
                            hops)
                return
            await self._tell_remote(ref, message, hops + 1)
            return
        if hops >= MAX_HOPS:
            reply.set_exception(Unavailable(f"{ref} is moving; retry", retry_after=0.5))
            return
        await self._pipe(self._ask(ref, message, DEFAULT_FORWARD_TIMEOUT), reply)

    async def _pipe(self, ask: Any, reply: asyncio.Future[Any]) -> None:
        try:
            result = await ask
        except Exception as exc:
            if not reply.done():
                reply.set_exception(exc)
        else:
            if not reply.done():
                reply.set_result(result)

    def view_hint(self, version: int) -> None:
        """Another node has seen view `version`: re-read membership when ours is older."""
        if version > self.view_version and self.refresh_view is not None:
            self.refresh_view()

    def view_changed(self) -> None:
        """The placement adopted a new view: wake sends waiting for one, and hand over every
        local activation whose key now belongs to another node."""
        self._view_event.set()
        self._view_event = asyncio.Event()
        if self.remote is None:
            return
        for activation in list(self._live.values()):
            if self._remote_node(activation.ref) is not None:
                self._hand_over(activation)

    def _hand_over(self, activation: Activation) -> None:
        slot = (activation.ref.kind, activation.ref.key)
        if self._live.get(slot) is activation:
            del self._live[slot]
        activation.moving = True
        self.stats.handovers += 1
        if activation.idle_timer is not None:
            activation.idle_timer.cancel()
            activation.idle_timer = None
        if (activation.task is None or activation.task.done()) and not activation.piping:
            self._retire(activation)
        # else: its drain task retires it after the message in hand and what it piped.

    def _retire(self, activation: Activation) -> None:
        """Forward what the moved activation had not handled, then stop it."""
        if activation.retired:
            return
        activation.retired = True
        for envelope in activation.take_all():
            self._forward(activation.ref, envelope)
        keep_alive = activation.context.has_timers
        slot = (activation.ref.kind, activation.ref.key)
        task = asyncio.get_running_loop().create_task(self._stop_moved(activation, keep_alive))
        self._stopping[slot] = task
        task.add_done_callback(lambda t: self._stopping.pop(slot, None)
                               if self._stopping.get(slot) is t else None)

    async def _stop_moved(self, activation: Activation, keep_alive: bool) -> None:
        await activation.stop()
        if keep_alive and not self._closed:
            # It had timers to keep (presence heartbeats, a ringing call): the new owner
            # activates now, after our on_stop flushed, and re-arms them from storage.
            try:
                await activation.ref.tell(Activate())
            except ActorError:
                log.warning("%s moved but its new owner could not be woken", activation.ref)

    def _forward(self, ref: ActorRef, envelope: Envelope) -> None:
        """Send a message that reached this node's old activation on to the owner."""
        message = envelope.message
        known = getattr(self.remote, "knows", None)
        if known is not None and not known(message):
            # The actor's own timer messages: the new owner re-arms its timers on start.
            if envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(Unavailable(f"{ref} moved", retry_after=0.2))
            return
        self.stats.forwarded += 1
        if envelope.reply is None:
            self._spawn(ref.tell(message), envelope.trace)
            return
        loop = asyncio.get_running_loop()
        remaining = (envelope.deadline or loop.time() + DEFAULT_FORWARD_TIMEOUT) - loop.time()
        self._spawn(self._pipe(self._ask(ref, message, max(remaining, 0.001)),
                               envelope.reply), envelope.trace)
