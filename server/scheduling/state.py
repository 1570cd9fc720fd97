"""The state machine of a scheduled post and of its targets, as pure functions.

    scheduled --claim--> publishing --settle--> published
        |                   |    ^-- retry wait --'  |
        | edit, publish     |                        `--> failed --retry--> publishing
        |   now (stays)     `--settle (none pending, one failed)--^   |
        `--cancel--> cancelled <--cancel-- (failed; publishing while no node holds it)

- `scheduled`: waiting for its time; the only state in which it may be edited or published
  now.
- `publishing`: a node holds it (a live claim) or it waits for a target's retry (no claim).
  Cancelling is refused while a node holds it (409 `publishing_in_progress`): the publish may
  be under way; it is allowed while it only waits (published targets stay published).
- `published`, `cancelled`: final. `failed`: in the dead-letter queue, until retried or
  cancelled.

A target is `pending` until it is `published`, or `failed` (a permanent error, or
SCHEDULE_MAX_ATTEMPTS transient ones), or `cancelled` with its post.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from protocols.schedule_records import Settlement, TargetState
from protocols.scheduling import AttemptOutcome, ScheduleStatus
from server.http.problems import Conflict
from server.scheduling.backoff import RetryPolicy

Action = Literal["edit", "publish_now", "cancel", "retry"]

# Where each action may start from; "publishing" only while no node holds the post.
_ALLOWED: dict[Action, frozenset[str]] = {
    "edit": frozenset({"scheduled"}),
    "publish_now": frozenset({"scheduled"}),
    "cancel": frozenset({"scheduled", "failed", "publishing"}),
    "retry": frozenset({"failed"}),
}
_REFUSAL: dict[Action, tuple[str, str]] = {
    "edit": ("not_editable", "Only a scheduled post can be edited; this one is {status}"),
    "publish_now": ("not_publishable", "Only a scheduled post can be published now; this one "
                                       "is {status}"),
    "cancel": ("not_cancellable", "A {status} post cannot be cancelled"),
    "retry": ("not_retryable", "Only a failed post can be retried; this one is {status}"),
}


def ensure_allowed(action: Action, status: ScheduleStatus, *, claimed: bool) -> None:
    """Raise Conflict (409, with a code per action) unless `action` may start from `status`
    (`claimed`: a node holds the post right now)."""
    if status in _ALLOWED[action] and not (status == "publishing" and claimed):
        return
    if status == "publishing" and claimed:
        raise Conflict("The post is being published right now; try again in a moment",
                       code="publishing_in_progress")
    code, message = _REFUSAL[action]
    raise Conflict(message.format(status=status), code=code)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try at one target came to."""

    kind: AttemptOutcome
    external_id: str | None = None
    url: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None  # transient: the target asked us to wait this long


def due_targets(targets: Sequence[TargetState], now: datetime) -> list[TargetState]:
    """The pending targets to try in a round at `now` (others wait for their own retry)."""
    return [t for t in targets
            if t.status == "pending" and (t.next_attempt_at is None or t.next_attempt_at <= now)]


def after_attempt(target: TargetState, outcome: Outcome, now: datetime, policy: RetryPolicy,
                  rng: random.Random) -> TargetState:
    """The target once its next try (number target.attempts + 1) ended in `outcome`."""
    attempt = target.attempts + 1
    if outcome.kind == "published":
        return msgspec.structs.replace(
            target, status="published", attempts=attempt, next_attempt_at=None,
            external_id=outcome.external_id, url=outcome.url, last_error_code=None,
            last_error=None, published_at=now)
    if outcome.kind == "permanent" or policy.exhausted(attempt):
        return msgspec.structs.replace(
            target, status="failed", attempts=attempt, next_attempt_at=None,
            last_error_code=outcome.code, last_error=outcome.message)
    wait = policy.delay(attempt, rng, outcome.retry_after)
    return msgspec.structs.replace(
        target, status="pending", attempts=attempt,
        next_attempt_at=now + timedelta(seconds=wait), last_error_code=outcome.code,
        last_error=outcome.message)


def settle(targets: Sequence[TargetState], now: datetime) -> Settlement:
    """How a round ends, from the targets as it left them: a target still pending means a
    retry at the earliest pending time; otherwise published when all are, else failed."""
    post_id = next((t.external_id for t in targets
                    if t.kind == "hubbub" and t.status == "published"), None)
    pending = [t for t in targets if t.status == "pending"]
    if pending:
        at = min(t.next_attempt_at or now for t in pending)
        return Settlement(status="publishing", at=now, next_attempt_at=at, post_id=post_id,
                          last_error=_last_error(targets))
    if targets and all(t.status == "published" for t in targets):
        return Settlement(status="published", at=now, post_id=post_id)
    return Settlement(status="failed", at=now, post_id=post_id,
                      last_error=_last_error(targets) or "no target to publish to")


def _last_error(targets: Sequence[TargetState]) -> str | None:
    errors = [f"{t.kind}: {t.last_error or t.last_error_code}" for t in targets
              if t.status != "published" and (t.last_error or t.last_error_code)]
    return "; ".join(errors) or None
