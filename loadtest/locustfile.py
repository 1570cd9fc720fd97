"""Locust scenarios for Hubbub: every path a real client takes, weighted like a social app
(many readers, fewer writers), over REST and over long-lived Socket.IO connections.

    make locust HOST=http://127.0.0.1:8080 USERS=200 SPAWN=20 TIME=5m SHAPE=steady
    .venv/bin/locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --web-host 127.0.0.1

User classes (weights): Reader 12, Writer 3, Scheduler 1 (locust_rest.py), ChatUser 5
(locust_socket.py), CallUser 1 (locust_calls.py). LOCUST_SHAPE picks the load shape
(locust_shapes.py): steady, spike, reconnect or smoke; unset or "none": plain --users /
--spawn-rate / --run-time; "all": every shape, for the web UI's --class-picker. The other
knobs (LOADTEST_*) are in locust_settings.py; the README's load-testing section has them all,
with the server settings a load test needs.
"""

from __future__ import annotations

import os

import locust_events  # noqa: F401 (registers the spike, storm and seeding listeners)
from locust_calls import CallUser
from locust_rest import Reader, Scheduler, Writer
from locust_shapes import SHAPES, HubbubShape
from locust_socket import ChatUser

__all__ = ["CallUser", "ChatUser", "Reader", "Scheduler", "Writer"]


def _shapes(choice: str) -> dict[str, type[HubbubShape]]:
    if choice in ("", "none"):
        return {}
    if choice == "all":
        return {cls.__name__: cls for cls in SHAPES.values()}
    if choice not in SHAPES:
        raise SystemExit(f"LOCUST_SHAPE={choice!r}: one of none, all, {', '.join(SHAPES)}")
    return {SHAPES[choice].__name__: SHAPES[choice]}


# Locust runs the shape class it finds in this module: export the chosen one(s) only.
globals().update(_shapes(os.environ.get("LOCUST_SHAPE", "").strip().lower()))
