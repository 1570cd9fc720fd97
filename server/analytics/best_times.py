"""Ranking the hours of the week from followers' activity: pure, with the zone given.

Activity is stored per real UTC hour; each is turned into the wall-clock weekday and hour of
the asked zone one by one, so daylight saving is exact: in a week where the clocks change,
the hours before the change land on one offset and those after on the other. A fall-back
night's repeated wall hour receives both of its real hours; a spring-forward night's skipped
hour receives none that day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from protocols.analytics import WEEKDAYS, BestTimeSlot
from protocols.analytics_records import ActivityRow

ENGAGED_WEIGHT = 2  # an engagement with your posts says more than a follower being around


@dataclass(slots=True)
class _Slot:
    engaged: int = 0
    active: int = 0

    @property
    def score(self) -> int:
        return ENGAGED_WEIGHT * self.engaged + self.active


def rank(rows: Iterable[ActivityRow], tz: ZoneInfo, limit: int) -> list[BestTimeSlot]:
    """The `limit` best (weekday, hour) slots in `tz`, best first: by score, then engagements,
    then earliest in the week (so equal evidence gives a stable order). Slots without any
    evidence are left out."""
    slots: dict[tuple[int, int], _Slot] = {}
    for row in rows:
        local = row.hour.astimezone(tz)
        slot = slots.setdefault((local.weekday(), local.hour), _Slot())
        slot.engaged += row.engaged
        slot.active += row.active
    ordered = sorted(
        ((key, slot) for key, slot in slots.items() if slot.score > 0),
        key=lambda item: (-item[1].score, -item[1].engaged, item[0]))
    return [BestTimeSlot(weekday=WEEKDAYS[day], hour=hour, engagements=slot.engaged,
                         active_followers=slot.active, score=slot.score)
            for (day, hour), slot in ordered[:limit]]
