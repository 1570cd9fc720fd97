"""ArrivalPace (storage/arrival_pace.py): the smoothed gap between arrivals, on a clock of the
test's own."""

from __future__ import annotations

from storage.arrival_pace import ArrivalPace
from tests.support.manual_clock import ManualClock


class Paced:
    """A pace that slows down past 12 s, on its own clock."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.pace = ArrivalPace(slow=12.0, clock=self.clock)

    def arrivals(self, gap: float, count: int) -> ArrivalPace:
        """`count` arrivals `gap` seconds apart; the pace after them."""
        for _ in range(count):
            self.clock.now += gap
            self.pace.arrived()
        return self.pace


def test_nothing_seen_yet_is_slow() -> None:
    pace = ArrivalPace(slow=12.0, clock=ManualClock())
    assert not pace.within(6.0)
    assert pace.within(12.0)


def test_a_steady_pace_shows_within_a_few_arrivals() -> None:
    paced = Paced()
    assert not paced.arrivals(1.0, 3).within(6.0)  # 12 -> 9.8 -> 8.04: not yet
    assert paced.arrivals(1.0, 2).within(6.0)


def test_a_pace_slower_than_asked_never_is_within() -> None:
    pace = Paced().arrivals(9.0, 50)
    assert not pace.within(6.0)
    assert pace.within(9.5)


def test_a_quiet_spell_weighs_as_one_slow_gap() -> None:
    paced = Paced()
    paced.arrivals(1.0, 30)
    pace = paced.arrivals(3600.0, 1)  # 1 + (12 - 1) * 0.2: the pace is still quick
    assert pace.within(3.3) and not pace.within(3.1)
    assert not paced.arrivals(3600.0, 3).within(6.0)  # quiet for longer: slow again
    assert paced.arrivals(1.0, 5).within(6.0)
