"""ArrivalPace (storage/arrival_pace.py): the smoothed gap between arrivals, on a clock of the
test's own."""

from __future__ import annotations

from storage.arrival_pace import ArrivalPace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def arrivals(pace: ArrivalPace, clock: Clock, gap: float, count: int) -> None:
    for _ in range(count):
        clock.now += gap
        pace.arrived()


def test_nothing_seen_yet_is_slow() -> None:
    pace = ArrivalPace(slow=12.0, clock=Clock())
    assert not pace.within(6.0)
    assert pace.within(12.0)


def test_a_steady_pace_shows_within_a_few_arrivals() -> None:
    clock = Clock()
    pace = ArrivalPace(slow=12.0, clock=clock)
    arrivals(pace, clock, 1.0, 3)
    assert not pace.within(6.0)  # 12 -> 9.8 -> 8.04: not yet
    arrivals(pace, clock, 1.0, 2)
    assert pace.within(6.0)


def test_a_pace_slower_than_asked_never_is_within() -> None:
    clock = Clock()
    pace = ArrivalPace(slow=12.0, clock=clock)
    arrivals(pace, clock, 9.0, 50)
    assert not pace.within(6.0)
    assert pace.within(9.5)


def test_a_quiet_spell_weighs_as_one_slow_gap() -> None:
    clock = Clock()
    pace = ArrivalPace(slow=12.0, clock=clock)
    arrivals(pace, clock, 1.0, 30)
    arrivals(pace, clock, 3600.0, 1)  # 1 + (12 - 1) * 0.2: the pace is still quick
    assert pace.within(3.3) and not pace.within(3.1)
    arrivals(pace, clock, 3600.0, 3)  # quiet for longer: slow again
    assert not pace.within(6.0)
    arrivals(pace, clock, 1.0, 5)
    assert pace.within(6.0)
