"""Shared pieces of the scheduling unit tests: scripted publishers and a scheduler on a
ManualClock over the in-memory ClaimStore."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from actors.clock import ManualClock
from protocols.publishing import PublishFailed, PublishRequest, PublishResult, TargetKind
from server.scheduling.backoff import RetryPolicy
from server.scheduling.ports import Publisher
from server.scheduling.scheduler import Scheduler, SchedulerOptions
from storage.memory.schedule_claims import MemoryClaimStore

# What a scripted publisher does on a call: return a result or raise.
Step = Callable[[PublishRequest], PublishResult]


def ok(request: PublishRequest) -> PublishResult:
    return PublishResult(external_id=f"ext-{request.scheduled_post_id}-{request.target_index}")


def transient(code: str = "server_error", retry_after: float | None = None) -> Step:
    def step(request: PublishRequest) -> PublishResult:
        raise PublishFailed(code, f"{code} on attempt {request.attempt}", permanent=False,
                            retry_after=retry_after)
    return step


def permanent(code: str = "duplicate_content") -> Step:
    def step(request: PublishRequest) -> PublishResult:
        raise PublishFailed(code, "refused", permanent=True)
    return step


@dataclass
class ScriptedPublisher:
    """A Publisher whose calls follow `script` (the last step repeats) and are recorded."""

    kind: TargetKind
    script: list[Step] = field(default_factory=lambda: [ok])
    calls: list[PublishRequest] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    clock: ManualClock | None = None

    async def publish(self, request: PublishRequest) -> PublishResult:
        self.calls.append(request)
        if self.clock is not None:
            self.times.append(self.clock.time())
        step = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return step(request)


class Rig:
    """A scheduler (or several) on one ManualClock and one MemoryClaimStore."""

    def __init__(self, *, concurrency: int = 8, batch_size: int = 50, lease: float = 30.0,
                 tick: float = 30.0, retry: RetryPolicy | None = None) -> None:
        self.clock = ManualClock()
        self.store = MemoryClaimStore(self.clock.time)
        self.publishers: dict[str, Publisher] = {}
        self.options = SchedulerOptions(
            batch_size=batch_size, concurrency=concurrency, lease=lease, tick=tick,
            publish_timeout=5.0, retry=retry or RetryPolicy(max_attempts=3, base=2.0, cap=60.0))
        self.schedulers: list[Scheduler] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.time(), UTC)

    def at(self, seconds: float) -> datetime:
        return self.now() + timedelta(seconds=seconds)

    def publisher(self, kind: TargetKind, *script: Step) -> ScriptedPublisher:
        publisher = ScriptedPublisher(kind, list(script) or [ok], clock=self.clock)
        self.publishers[kind] = publisher
        return publisher

    async def start(self, node_id: str = "node-a", **options: object) -> Scheduler:
        scheduler = Scheduler(self.store, self.publishers, node_id=node_id, clock=self.clock,
                              options=self.options, rng=random.Random(7))
        await scheduler.start()
        self.schedulers.append(scheduler)
        await self.idle()
        return scheduler

    async def idle(self) -> None:
        """Until every scheduler sleeps with nothing running."""
        async with asyncio.timeout(5):
            for scheduler in self.schedulers:
                await scheduler.wait_idle()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.idle()

    async def stop(self) -> None:
        for scheduler in self.schedulers:
            await scheduler.stop()
