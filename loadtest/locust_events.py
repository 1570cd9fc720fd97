"""What happens to every user of a process at once: a celebrity's post (the spike) and a
reconnect storm. The load shapes (locust_shapes.py) decide when; they run on the master
of a distributed run, so they send a locust custom message that every worker (or the single
local runner) handles here. Also the start of each run: the seed data (locust_world.py).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner
from locust_settings import SETTINGS
from locust_world import WORLD, celebrity_post, seed

log = logging.getLogger("hubbub.loadtest")

SPIKE = "hubbub:spike"
STORM = "hubbub:storm"


def announce(environment: Environment, message: str) -> None:
    """Tell every process running users (a master sends to its workers; a local runner
    handles it itself)."""
    assert environment.runner is not None
    log.info("%s", message)
    environment.runner.send_message(message, {})


def spike(environment: Environment) -> None:
    """The celebrity posts; everyone who follows it here refreshes the home feed at once
    (`/v1/feed [spike]`), and connected followers get `feed:new`."""
    posted = celebrity_post("Big news, everyone!", "/v1/posts [celebrity]")
    followers = list(WORLD.followers)
    log.info("spike: celebrity posted (%s); %d followers refresh at once", posted,
             len(followers))
    for follower in followers:
        gevent.spawn(follower.refresh_feed_now)


def storm(environment: Environment) -> None:
    """Drop LOADTEST_STORM_FRACTION of this process's sockets at once; each comes back
    within LOADTEST_STORM_JITTER seconds, joining its rooms with since_seq."""
    sockets = list(WORLD.sockets)
    chosen = random.sample(sockets, round(len(sockets) * SETTINGS.storm_fraction))
    dropped = sum(s.storm_drop(random.uniform(0.0, SETTINGS.storm_jitter)) for s in chosen)
    log.info("storm: dropped %d of %d sockets", dropped, len(sockets))


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if runner is None or isinstance(runner, MasterRunner):
        return
    runner.register_message(SPIKE, lambda environment, msg, **_: gevent.spawn(
        spike, environment))
    runner.register_message(STORM, lambda environment, msg, **_: gevent.spawn(
        storm, environment))


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner) and WORLD.celebrity is None:
        seed(environment)
