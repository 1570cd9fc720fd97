"""Load shapes, scaled by the common options: --users (U), --spawn-rate (R) and --run-time
(T; 5 minutes when not given). The locustfile exports the one LOCUST_SHAPE names.

- steady: ramp to U at R and hold until T: a steady day.
- spike: half of U until 40% of T; then the celebrity posts and all its followers refresh at
  once while the other half arrives within ~5 s (the push brings people in); back to half
  at 60%.
- reconnect: U until T, with two reconnect storms (at 40% and 75% of T): most sockets drop
  and come back within seconds, joining their rooms with since_seq.
- smoke: U until T with one spike (35%) and one storm (60%): everything in one short run
  (tests/e2e/test_locust.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from locust import LoadTestShape
from locust_events import SPIKE, STORM, announce

DEFAULT_SECONDS = 300.0


@dataclass(frozen=True)
class Stage:
    until: float  # share of the run time
    users: float  # share of --users
    rate: float = 0.0  # spawn rate; 0: --spawn-rate


class HubbubShape(LoadTestShape):
    abstract = True
    use_common_options = True
    stages: tuple[Stage, ...] = (Stage(1.0, 1.0),)
    moments: tuple[tuple[float, str], ...] = ()  # (share of the run time, message)

    def __init__(self) -> None:
        super().__init__()
        self.fired: set[int] = set()

    def reset_time(self) -> None:
        super().reset_time()
        self.fired = set()

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        users = int(getattr(options, "num_users", None) or 10)
        rate = float(getattr(options, "spawn_rate", None) or max(1.0, users / 10))
        seconds = float(getattr(options, "run_time", None) or DEFAULT_SECONDS)
        now = self.get_run_time()
        if now >= seconds:
            return None
        for index, (share, message) in enumerate(self.moments):
            if index not in self.fired and now >= share * seconds:
                self.fired.add(index)
                announce(self.runner.environment, message)
        stage = next(s for s in self.stages if now < s.until * seconds or s is self.stages[-1])
        return max(1, round(stage.users * users)), stage.rate * users or rate


class SteadyShape(HubbubShape):
    stages = (Stage(1.0, 1.0),)


class SpikeShape(HubbubShape):
    # The surge spawns the second half within about 5 s (rate 0.1 U/s).
    stages = (Stage(0.4, 0.5), Stage(0.6, 1.0, rate=0.1), Stage(1.0, 0.5))
    moments = ((0.4, SPIKE),)


class ReconnectShape(HubbubShape):
    moments = ((0.4, STORM), (0.75, STORM))


class SmokeShape(HubbubShape):
    moments = ((0.35, SPIKE), (0.6, STORM))


SHAPES: dict[str, type[HubbubShape]] = {
    "steady": SteadyShape, "spike": SpikeShape, "reconnect": ReconnectShape,
    "smoke": SmokeShape,
}
