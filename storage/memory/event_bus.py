"""The in-process event bus (server.events.ports.EventBus): the embedded default.

One queue and one worker task per consumer group: a worker calls its handler for one event at
a time, in publish order; different consumers run in parallel. Nothing in memory is durable, so
`publish` returns only once every subscribed consumer has handled (or dead-lettered) each
event; the outbox relay marks rows published after that, and a crash before it means
redelivery from the outbox, not loss.

An event's traceparent (when the relay gives one) travels next to it in the queues and is
handed to the delivery, which continues that trace in a consumer span.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocols.events import EventEnvelope
from storage.event_delivery import (
    DeadLetters,
    Delivery,
    DeliveryObserver,
    EventHandler,
    RetryPolicy,
    Sleep,
    Stopped,
    check_subscription,
    topic_of,
)

log = logging.getLogger("hubbub.events")

# A batch of events for one consumer, each with its traceparent (or None), and the future its
# publisher awaits; None wakes a worker to stop.
_Item = tuple[list[tuple[EventEnvelope, str | None]], "asyncio.Future[None]"] | None


@dataclass
class _Consumer:
    name: str
    topics: frozenset[str]
    handler: EventHandler
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)


class InProcessEventBus:
    def __init__(self, *, dead_letters: DeadLetters, policy: RetryPolicy | None = None,
                 observer: DeliveryObserver | None = None, sleep: Sleep = asyncio.sleep,
                 stop_timeout: float = 10.0) -> None:
        self._delivery = Delivery(dead_letters=dead_letters, policy=policy, observer=observer,
                                  sleep=sleep)
        self._consumers: dict[str, _Consumer] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = asyncio.Event()
        self._stop_timeout = stop_timeout

    def subscribe(self, consumer: str, topics: Sequence[str], handler: EventHandler) -> None:
        if self._started:
            raise RuntimeError(f"subscribe({consumer!r}) after the bus started")
        check_subscription(consumer, topics, set(self._consumers))
        self._consumers[consumer] = _Consumer(consumer, frozenset(topics), handler)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._workers = [asyncio.create_task(self._work(c), name=f"events:{c.name}")
                         for c in self._consumers.values()]

    async def publish(self, events: Sequence[EventEnvelope],
                      traceparents: Sequence[str | None] | None = None) -> None:
        if self._stopping.is_set():
            raise Stopped("the event bus is stopped")
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for event in events:
            if topic_of(event) is None:
                log.error("event of unknown type not delivered",
                          extra={"event_id": event.id, "event_type": event.type})
        traced = list(zip(events, traceparents or [None] * len(events), strict=True))
        # Enqueue without awaiting: concurrent publishes keep their order in every queue.
        for consumer in self._consumers.values():
            mine = [(e, t) for e, t in traced if topic_of(e) in consumer.topics]
            if mine:
                done = loop.create_future()
                consumer.queue.put_nowait((mine, done))
                waits.append(done)
        if waits:
            await asyncio.gather(*waits)

    async def stop(self) -> None:
        if not self._started or self._stopping.is_set():
            self._stopping.set()
            return
        self._stopping.set()
        for consumer in self._consumers.values():
            consumer.queue.put_nowait(None)
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=self._stop_timeout)
            for task in late:
                log.warning("event handler still running at stop; cancelled",
                            extra={"task": task.get_name()})
                task.cancel()
            if late:
                await asyncio.wait(late)
        for consumer in self._consumers.values():  # what was queued and never started
            while not consumer.queue.empty():
                item = consumer.queue.get_nowait()
                if item is not None and not item[1].done():
                    item[1].set_exception(Stopped("the event bus stopped"))

    async def _work(self, consumer: _Consumer) -> None:
        while True:
            item = await consumer.queue.get()
            if item is None:
                return
            events, done = item
            try:
                for event, traceparent in events:
                    if self._stopping.is_set():
                        raise Stopped("the event bus stopped")
                    await self._delivery.deliver(consumer.name, consumer.handler, event,
                                                 self._stopping, traceparent)
            except asyncio.CancelledError:  # stop() gave up waiting for this handler
                if not done.done():
                    done.set_exception(Stopped("the event bus stopped"))
                raise
            except Exception as exc:  # Stopped, or a dead letter that could not be parked
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)
