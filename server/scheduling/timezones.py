"""Turning a requested time into the instant a post is published, with daylight saving
resolved the way the response says.

An instant with an offset is taken as it is ("exact"). A wall time without one is read in
the IANA zone: a wall time that exists once is "exact"; one inside a DST gap (skipped by a
spring-forward change) is moved forward by the length of the gap ("shifted_forward": 02:30
on the night New York jumps from 02:00 to 03:00 becomes 03:30 EDT) or refused; one a
fall-back change repeats is its first ("earlier_of_two") or second ("later_of_two")
occurrence, or refused. Never a silent shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.problems import FieldError
from protocols.scheduling import Ambiguous, Nonexistent, Resolution
from server.http.problems import ValidationFailed


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    scheduled_for: datetime  # aware, UTC
    timezone: str
    local_time: datetime  # naive wall time in `timezone`
    requested_local_time: datetime | None  # naive; None when an instant was requested
    resolution: Resolution


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone `name`; 422 `unknown_timezone` when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError / OSError: a name zoneinfo refuses to look up as a path ("../x").
        raise _invalid(field, f"{name!r} is not an IANA time zone", "unknown_timezone") from None


def resolve(requested: datetime, timezone: str | None, *,
            nonexistent: Nonexistent = "shift_forward",
            ambiguous: Ambiguous = "earlier") -> ResolvedTime:
    """The instant `requested` means. Raises ValidationFailed (422): `timezone_required` for a
    wall time without a zone, `unknown_timezone`, `nonexistent_local_time` /
    `ambiguous_local_time` when the policy is "reject", `invalid_time` when out of range."""
    name = timezone or "UTC"
    tz = zone(name)
    try:
        if requested.tzinfo is not None and requested.utcoffset() is not None:
            instant = requested.astimezone(UTC)
            local = instant.astimezone(tz).replace(tzinfo=None)
            return ResolvedTime(instant, name, local, None, "exact")
        if timezone is None:
            raise _invalid("timezone", "Give the time zone of a time without an offset",
                           "timezone_required")
        return _from_wall_time(requested.replace(tzinfo=None), tz, name, nonexistent,
                               ambiguous)
    except OverflowError:
        raise _invalid("scheduled_for", "The time is out of range", "invalid_time") from None


def _from_wall_time(wall: datetime, tz: ZoneInfo, name: str, nonexistent: Nonexistent,
                    ambiguous: Ambiguous) -> ResolvedTime:
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return ResolvedTime(first.astimezone(UTC), name, wall, wall, "exact")
    # The two folds disagree: the wall time is in a gap or an overlap. A time in an overlap
    # survives the round trip through UTC; one in a gap comes back as another wall time.
    round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != wall:
        if nonexistent == "reject":
            raise _invalid("scheduled_for", f"{wall.isoformat()} does not exist in {name} (a "
                           "daylight-saving change skips it)", "nonexistent_local_time")
        # fold=0 in a gap uses the offset from before the change: the instant the wall clock
        # would show had it not jumped, i.e. the requested time moved forward by the gap.
        instant = first.astimezone(UTC)
        local = instant.astimezone(tz).replace(tzinfo=None)
        return ResolvedTime(instant, name, local, wall, "shifted_forward")
    if ambiguous == "reject":
        raise _invalid("scheduled_for", f"{wall.isoformat()} happens twice in {name} (a "
                       "daylight-saving change repeats it); choose `ambiguous`: earlier or "
                       "later", "ambiguous_local_time")
    chosen, resolution = (first, "earlier_of_two") if ambiguous == "earlier" \
        else (second, "later_of_two")
    return ResolvedTime(chosen.astimezone(UTC), name, wall, wall, resolution)


def wall_time(instant: datetime, tz_name: str) -> datetime:
    """The naive wall time of `instant` in the zone (which must exist)."""
    return instant.astimezone(ZoneInfo(tz_name)).replace(tzinfo=None)


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])
