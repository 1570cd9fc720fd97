"""`context.stop_after()`: an actor that found nothing to hold asks to be passivated right
after the current message, without waiting for the idle timeout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from actors.actor import Actor, ActorContext
from actors.clock import ManualClock
from actors.errors import Rejected
from actors.system import ActorSystem


@dataclass(frozen=True)
class Look:
    """Answer what the actor holds; ask to go when it holds nothing. `refuse`: raise
    Rejected (after asking to go) instead of answering."""

    refuse: bool = False


@dataclass(frozen=True)
class Keep:
    """Answer without asking to go."""


@dataclass(frozen=True)
class Remind:
    delay: float


@dataclass
class World:
    things: dict[str, str] = field(default_factory=dict)
    loads: int = 0
    stops: list[str] = field(default_factory=list)


class Finder(Actor):
    idle_timeout = 600.0

    def __init__(self, key: str, context: ActorContext, world: World) -> None:
        super().__init__(key, context)
        self.world = world
        self.thing: str | None = None

    async def on_start(self) -> None:
        self.world.loads += 1
        self.thing = self.world.things.get(self.key)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Remind):
            self.context.schedule(message.delay, Look())
            self.context.stop_after()
            return None
        if isinstance(message, Keep):
            return "kept"
        if self.thing is None:
            self.context.stop_after()
            if message.refuse:
                raise Rejected("not_found", "nothing here")
        return self.thing

    async def on_stop(self) -> None:
        self.world.stops.append(self.key)


def make(world: World) -> tuple[ActorSystem, ManualClock]:
    clock = ManualClock()
    system = ActorSystem(clock=clock)
    system.register(Finder, lambda key, ctx: Finder(key, ctx, world))
    return system, clock


async def test_an_actor_that_found_nothing_is_gone_after_answering() -> None:
    world = World(things={"real": "thing"})
    system, _ = make(world)
    for i in range(100):
        with pytest.raises(Rejected):
            await system.ref(Finder, f"made-up-{i}").ask(Look(refuse=True), timeout=1)
    assert await system.ref(Finder, "real").ask(Look(), timeout=1) == "thing"
    await system.settled()  # no clock advance: nothing waited for the idle timeout
    assert system.snapshot().live == {"Finder": 1}  # only the real one
    assert len(world.stops) == 100 and system.stats.passivations == 100
    await system.stop()


async def test_a_message_after_the_stop_gets_a_fresh_activation() -> None:
    world = World()
    system, _ = make(world)
    ref = system.ref(Finder, "later")
    assert await ref.ask(Look(), timeout=1) is None
    world.things["later"] = "created since"
    assert await ref.ask(Look(), timeout=1) == "created since"  # loaded again
    assert world.loads == 2 and world.stops == ["later"]
    await system.settled()
    assert system.is_live(ref)  # it holds something now: the idle timeout applies
    await system.stop()


async def test_the_wish_applies_to_the_message_it_was_made_in() -> None:
    world = World()
    system, _ = make(world)
    kept, gone = system.ref(Finder, "kept"), system.ref(Finder, "gone")
    kept.tell_nowait(Look())  # asks to go, but another message waits behind it
    kept.tell_nowait(Keep())
    gone.tell_nowait(Keep())
    gone.tell_nowait(Look())  # the last message asks to go
    await system.settled()
    assert system.is_live(kept) and not system.is_live(gone)
    assert world.loads == 2 and world.stops == ["gone"]
    await system.stop()


async def test_pending_timers_keep_it_until_the_idle_timeout() -> None:
    world = World()
    system, clock = make(world)
    ref = system.ref(Finder, "timed")
    await ref.ask(Remind(delay=5), timeout=1)
    await system.settled()
    assert system.is_live(ref)  # a timer is pending: the wish waits
    clock.advance(5)  # the reminder arrives: it holds nothing and asks to go again
    await system.settled()
    assert not system.is_live(ref) and world.stops == ["timed"]
    await system.stop()
