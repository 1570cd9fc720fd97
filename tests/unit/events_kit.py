"""Helpers for event tests: envelopes of each topic, recording handlers, a fake sleep."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocols.events import EventEnvelope, FollowCreated, PostLiked, envelope
from protocols.ids import new_id

AT = datetime(2024, 5, 1, tzinfo=UTC)


def user_event(follower: str | None = None) -> EventEnvelope:
    """A follow.created (topic hubbub.users) keyed by `follower`."""
    follower = follower or new_id()
    return envelope(FollowCreated(follower_id=follower, followee_id=new_id()),
                    actor_id=follower, occurred_at=AT)


def post_event(post_id: str | None = None) -> EventEnvelope:
    """A post.liked (topic hubbub.posts) keyed by `post_id`."""
    return envelope(PostLiked(post_id=post_id or new_id(), author_id=new_id(),
                              user_id=new_id()), actor_id=None, occurred_at=AT)


@dataclass
class Recorder:
    """A handler recording the events it saw, optionally failing the first `fail` calls."""

    fail: int = 0
    seen: list[EventEnvelope] = field(default_factory=list)
    calls: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # an event was handled
    called: asyncio.Event = field(default_factory=asyncio.Event)  # the handler was called

    async def __call__(self, event: EventEnvelope) -> None:
        self.calls += 1
        self.called.set()
        if self.calls <= self.fail:
            raise RuntimeError(f"boom {self.calls}")
        self.seen.append(event)
        self.arrived.set()

    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


@dataclass
class FakeSleep:
    """Returns at once and records the delays asked for."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def never_wake(seconds: float) -> None:
    """A sleep that lasts until cancelled (a backoff still running at stop)."""
    await asyncio.Event().wait()
