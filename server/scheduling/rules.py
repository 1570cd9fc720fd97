"""The rules a team sets on scheduling (SCHEDULE_* settings), as pure functions.

Per author: at most `max_pending` posts waiting (scheduled or publishing); no two posts
closer than `min_interval`; at most `max_per_hour` in any rolling hour and `max_per_day` in
any rolling 24 hours. The posts counted are the author's scheduled, publishing and published
scheduled posts, at their scheduled_for. 0 switches a rule off.

Windows are rolling, not calendar hours: "at most M per hour" means no interval [w, w+1h)
holds more than M posts. Two posts are "too close" when strictly less than min_interval
apart, so the boundary times (s + min_interval, s + 1h, ...) are allowed, and the next free
slot is always one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from protocols.schedule_records import ScheduleLoad
from protocols.scheduling import ScheduleConflictProblem
from server.http.problems import Conflict

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ScheduleRules:
    max_pending: int = 0
    min_interval: timedelta = timedelta(0)
    max_per_hour: int = 0
    max_per_day: int = 0

    @property
    def lookback(self) -> timedelta:
        """How far before a time the posts that can conflict with it lie."""
        return max(self.min_interval, HOUR if self.max_per_hour else timedelta(0),
                   DAY if self.max_per_day else timedelta(0))


class ScheduleConflict(Conflict):
    """409: a scheduling rule refuses the time; the problem carries the next free slot."""

    def __init__(self, detail: str, *, code: str, next_free_slot: datetime | None) -> None:
        super().__init__(detail, code=code)
        self.next_free_slot = next_free_slot

    def to_problem(self, instance: str | None = None) -> ScheduleConflictProblem:
        base = super().to_problem(instance)
        return ScheduleConflictProblem(
            type=base.type, title=base.title, status=base.status, code=base.code,
            detail=base.detail, instance=base.instance, next_free_slot=self.next_free_slot)


def conflict_at(rules: ScheduleRules, times: Sequence[datetime], at: datetime) -> str | None:
    """The code of the first time rule a new post at `at` would break, or None."""
    if rules.min_interval and any(abs(s - at) < rules.min_interval for s in times):
        return "schedule_min_interval"
    if rules.max_per_hour and _window_full(times, at, HOUR, rules.max_per_hour):
        return "schedule_hourly_limit"
    if rules.max_per_day and _window_full(times, at, DAY, rules.max_per_day):
        return "schedule_daily_limit"
    return None


def next_free_slot(rules: ScheduleRules, times: Sequence[datetime], at: datetime) -> datetime:
    """The earliest time >= `at` that no time rule refuses. Feasibility only begins where a
    post stops counting (s + min_interval, s + 1h, s + 24h), so those are the candidates; the
    last one lies past every post's reach, so there always is an answer."""
    steps = [step for step, on in ((rules.min_interval, bool(rules.min_interval)),
                                   (HOUR, bool(rules.max_per_hour)),
                                   (DAY, bool(rules.max_per_day))) if on]
    candidates = sorted({at, *(s + step for s in times for step in steps if s + step > at)})
    for candidate in candidates:
        if conflict_at(rules, times, candidate) is None:
            return candidate
    return candidates[-1]  # not reached: the last candidate is beyond every post's window


def check(rules: ScheduleRules, load: ScheduleLoad, at: datetime, *, adding: bool) -> None:
    """Raise ScheduleConflict when a post at `at` breaks a rule. `adding`: a new post (the
    pending limit applies); False for a reschedule (load.times must leave the post out)."""
    if adding and rules.max_pending and load.pending >= rules.max_pending:
        raise ScheduleConflict(
            f"You have {load.pending} posts waiting to be published; at most "
            f"{rules.max_pending} may wait at once", code="schedule_pending_limit",
            next_free_slot=None)
    code = conflict_at(rules, load.times, at)
    if code is None:
        return
    slot = next_free_slot(rules, load.times, at)
    raise ScheduleConflict(f"{_WHY[code](rules)}; the next free slot is "
                           f"{slot.isoformat().replace('+00:00', 'Z')}",
                           code=code, next_free_slot=slot)


def _window_full(times: Sequence[datetime], at: datetime, width: timedelta,
                 limit: int) -> bool:
    """Does some window [w, w + width) that contains `at` already hold `limit` posts? The
    fullest such windows start at `at` or at a post in (at - width, at], so only those are
    counted."""
    near = [s for s in times if at - width < s < at + width]
    if len(near) < limit:
        return False
    starts = [at, *(s for s in near if s <= at)]
    return any(sum(1 for s in near if w <= s < w + width) >= limit for w in starts)


_WHY = {
    "schedule_min_interval": lambda r: "Another of your posts is scheduled less than "
                                       f"{_span(r.min_interval)} from this time",
    "schedule_hourly_limit": lambda r: f"At most {r.max_per_hour} of your posts may be "
                                       "published in any hour",
    "schedule_daily_limit": lambda r: f"At most {r.max_per_day} of your posts may be "
                                      "published in any 24 hours",
}


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
