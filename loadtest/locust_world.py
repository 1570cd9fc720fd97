"""What the simulated users of one locust process know about each other (accounts, recent
posts, who is online), and the seed data every run creates at its start through the API: one
"celebrity" account, which every REST user and chat user follows, and its first posts.

Each locust process (the single one, or each worker of a distributed run) has its own world
and its own celebrity: users of different workers never address each other.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust_accounts import Account, SignupFailed, fresh, signup

log = logging.getLogger("hubbub.loadtest")

SEED_POSTS = 3


class FeedFollower(Protocol):
    def refresh_feed_now(self) -> None:
        """Read the home feed at once (a spike's push arrived)."""


class Droppable(Protocol):
    def storm_drop(self, back_in: float) -> bool:
        """Lose the connection now and reconnect after `back_in` seconds; False when this
        socket cannot take part now (not connected, in a call)."""


@dataclass(eq=False)
class World:
    users: list[str] = field(default_factory=list)  # every account signed up here
    authors: list[str] = field(default_factory=list)  # accounts that post (writers)
    posts: deque[str] = field(default_factory=lambda: deque(maxlen=500))  # recent originals
    socket_users: list[str] = field(default_factory=list)  # accounts with a socket
    followers: set[FeedFollower] = field(default_factory=set)  # REST users, for spikes
    sockets: set[Droppable] = field(default_factory=set)  # socket users, for storms
    celebrity: Account | None = None
    celebrity_client: FastHttpSession | None = None

    def someone(self, exclude: str, pool: list[str] | None = None) -> str | None:
        candidates = pool if pool is not None else self.users
        if not candidates or candidates == [exclude]:
            return None
        for _ in range(8):
            pick = random.choice(candidates)
            if pick != exclude:
                return pick
        return None

    def recent_post(self) -> str | None:
        return random.choice(self.posts) if self.posts else None


WORLD = World()


def seed(environment: Environment) -> None:
    """Sign the celebrity up and let it post (requests named `... [seed]`). A failure is
    logged and reported; the run goes on without spikes."""
    if not environment.host:
        log.warning("no --host: nothing seeded")
        return
    client = FastHttpSession(environment.host, environment.events.request, None)
    try:
        celebrity = signup(client, "celeb", name="/v1/auth/signup [seed]")
    except SignupFailed as exc:
        log.error("seeding failed: %s", exc)
        return
    WORLD.celebrity, WORLD.celebrity_client = celebrity, client
    WORLD.users.append(celebrity.user_id)
    WORLD.authors.append(celebrity.user_id)
    for number in range(SEED_POSTS):
        celebrity_post(f"Hello, world: post {number + 1} of the celebrity", "/v1/posts [seed]")
    log.info("seeded: celebrity %s with %d posts", celebrity.username, SEED_POSTS)


def celebrity_post(text: str, name: str) -> bool:
    celebrity, client = WORLD.celebrity, WORLD.celebrity_client
    if celebrity is None or client is None:
        return False
    with client.post("/v1/posts", json={"text": text}, headers=fresh(client, celebrity),
                     name=name, catch_response=True) as response:
        if response.status_code != 201:
            response.failure(f"{response.status_code} {(response.text or '')[:200]}")
            return False
        WORLD.posts.append(response.json()["id"])
    return True
