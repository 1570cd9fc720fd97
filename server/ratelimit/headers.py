"""The rate-limit response fields, per draft-ietf-httpapi-ratelimit-headers (-10/-11).

Both are Structured Field lists (RFC 9651) with one item per bucket the request spent from:
the client's global bucket, policy "default", and the route's own bucket, if it has one,
named after the route:

    RateLimit-Policy: "default";q=1000;w=60, "posts.create";q=10;w=60
    RateLimit: "default";r=993;t=1, "posts.create";r=0;t=6

`q` is the bucket's size and `w` its window (every bucket refills its q tokens evenly over
60 seconds); `r` is what is left after this request; `t` is the effective window: seconds
until the bucket is full again, or, for the bucket that refused a request (a 429), seconds
until it lets one through, which is also the response's `Retry-After`. So t never ends
after the point Retry-After names, as the draft asks.

The older draft's `RateLimit-Limit` / `RateLimit-Remaining` (the bucket closest to empty)
are still sent, for clients written against them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from protocols.ratelimit import RateDecision

WINDOW_SECONDS = 60  # every bucket holds a per-minute limit (protocols.ratelimit)
GLOBAL_POLICY = "default"


@dataclass(frozen=True, slots=True)
class Spent:
    """One bucket a request spent from (or was refused by), and what it answered."""

    policy: str  # "default" or the route name
    decision: RateDecision


def policy_field(policies: Sequence[tuple[str, int]]) -> str:
    """`RateLimit-Policy` for (name, per_minute) pairs."""
    return ", ".join(f'{_string(name)};q={limit};w={WINDOW_SECONDS}' for name, limit in policies)


def ratelimit_field(spent: Sequence[Spent]) -> str:
    """`RateLimit` for the buckets this request touched."""
    return ", ".join(f"{_string(s.policy)};r={max(0, s.decision.remaining)};"
                     f"t={effective_window(s.decision)}" for s in spent)


def effective_window(decision: RateDecision) -> int:
    """Whole seconds: until the bucket is full again (allowed), or until it allows the next
    request (refused; rounded as Retry-After is, so the two agree)."""
    if not decision.allowed:
        return max(1, math.ceil(decision.retry_after))
    missing = max(0, decision.limit - decision.remaining)
    # `remaining` is rounded down, so this is an upper bound of the true refill time.
    return min(WINDOW_SECONDS, math.ceil(missing * WINDOW_SECONDS / decision.limit))


def legacy_fields(spent: Sequence[Spent]) -> dict[str, str]:
    """RateLimit-Limit / RateLimit-Remaining (draft-06 and before) of the tightest bucket."""
    tightest = min((s.decision for s in spent), key=lambda d: (d.remaining, d.limit))
    return {"RateLimit-Limit": str(tightest.limit),
            "RateLimit-Remaining": str(max(0, tightest.remaining))}


def _string(value: str) -> str:
    """An sf-string (RFC 9651 section 3.3.3); policy names are route names, plain ASCII."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
