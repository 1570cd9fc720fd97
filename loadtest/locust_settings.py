"""The locust scenarios' knobs, read once from the environment (see the README's load-testing
section). Nothing here talks to the server."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

PASSWORD = "load-test password 1"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _pair(name: str) -> tuple[float, float] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    low, high = (float(x) for x in raw.split(","))
    return low, high


@dataclass(frozen=True)
class Settings:
    # Every pause between two tasks of a user is multiplied by this (0.2: five times as busy).
    pace: float
    # "min,max" seconds: replaces every user class's own pauses (`make bench` sets "0,0").
    wait: tuple[float, float] | None
    # Each user runs every one of its tasks once, in order, right after it starts (tests).
    tour: bool
    room_size: int  # chat users per group room
    ack_timeout: float  # seconds a Socket.IO ack or an awaited push may take
    call_hold: tuple[float, float]  # seconds a call stays up after its signals
    storm_fraction: float  # share of this process's sockets a reconnect storm drops
    storm_jitter: float  # dropped sockets come back within this many seconds

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            pace=_float("LOADTEST_PACE", 1.0),
            wait=_pair("LOADTEST_WAIT"),
            tour=os.environ.get("LOADTEST_TOUR", "") not in ("", "0"),
            room_size=max(2, int(_float("LOADTEST_ROOM_SIZE", 5))),
            ack_timeout=_float("LOADTEST_ACK_TIMEOUT", 15.0),
            call_hold=_pair("LOADTEST_CALL_HOLD") or (1.0, 4.0),
            storm_fraction=min(1.0, max(0.0, _float("LOADTEST_STORM_FRACTION", 0.8))),
            storm_jitter=_float("LOADTEST_STORM_JITTER", 5.0),
        )

    def pause(self, low: float, high: float) -> float:
        """Seconds to wait between two tasks of a user whose own range is low..high."""
        if self.wait is not None:
            low, high = self.wait
        return random.uniform(low, high) * self.pace


SETTINGS = Settings.from_env()
