"""The state machine of a scheduled post: which actions each status allows (and the 409 code
otherwise), what an attempt does to a target, and how a round settles the post."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from protocols.schedule_records import TargetState
from server.http.problems import Conflict
from server.scheduling.backoff import RetryPolicy
from server.scheduling.state import Outcome, after_attempt, due_targets, ensure_allowed, settle

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base=4.0, cap=60.0)

ALLOWED = {
    ("edit", "scheduled"), ("publish_now", "scheduled"), ("cancel", "scheduled"),
    ("cancel", "failed"), ("cancel", "publishing"), ("retry", "failed"),
}
REFUSED_CODE = {"edit": "not_editable", "publish_now": "not_publishable",
                "cancel": "not_cancellable", "retry": "not_retryable"}
STATUSES = ("scheduled", "publishing", "published", "failed", "cancelled")


@pytest.mark.parametrize("action", sorted(REFUSED_CODE))
@pytest.mark.parametrize("status", STATUSES)
def test_actions_by_status(action: str, status: str) -> None:
    if (action, status) in ALLOWED:
        ensure_allowed(action, status, claimed=False)  # type: ignore[arg-type]
        return
    with pytest.raises(Conflict) as refused:
        ensure_allowed(action, status, claimed=False)  # type: ignore[arg-type]
    assert refused.value.code == REFUSED_CODE[action]


def test_nothing_happens_to_a_post_a_node_is_publishing() -> None:
    for action in REFUSED_CODE:
        with pytest.raises(Conflict) as refused:
            ensure_allowed(action, "publishing", claimed=True)  # type: ignore[arg-type]
        assert refused.value.code in ("publishing_in_progress", REFUSED_CODE[action])
    with pytest.raises(Conflict) as refused:
        ensure_allowed("cancel", "publishing", claimed=True)
    assert refused.value.code == "publishing_in_progress"


def target(kind: str = "hubbub", **fields: object) -> TargetState:
    return TargetState(index=0, kind=kind, **fields)  # type: ignore[arg-type]


def test_attempt_outcomes_move_a_target() -> None:
    rng = random.Random(0)
    published = after_attempt(target(), Outcome("published", external_id="p1", url="/p1"),
                              NOW, POLICY, rng)
    assert (published.status, published.attempts, published.external_id) == ("published", 1,
                                                                               "p1")
    assert published.published_at == NOW and published.next_attempt_at is None

    failed = after_attempt(target(), Outcome("permanent", code="token_revoked",
                                             message="revoked"), NOW, POLICY, rng)
    assert (failed.status, failed.last_error_code, failed.attempts) == ("failed",
                                                                        "token_revoked", 1)

    waiting = after_attempt(target(), Outcome("transient", code="timeout"), NOW, POLICY, rng)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert NOW + timedelta(seconds=2) <= waiting.next_attempt_at <= NOW + timedelta(seconds=4)

    last = after_attempt(target(attempts=2), Outcome("transient", code="timeout"), NOW, POLICY,
                         rng)
    assert last.status == "failed" and last.attempts == 3  # SCHEDULE_MAX_ATTEMPTS spent


def test_a_round_tries_only_the_targets_that_are_due() -> None:
    later = NOW + timedelta(minutes=5)
    targets = [TargetState(index=0, kind="hubbub", status="published"),
               TargetState(index=1, kind="webhook"),
               TargetState(index=2, kind="x", next_attempt_at=later),
               TargetState(index=3, kind="x", next_attempt_at=NOW)]
    assert [t.index for t in due_targets(targets, NOW)] == [1, 3]


def test_settling_a_round() -> None:
    later = NOW + timedelta(seconds=30)
    hub = TargetState(index=0, kind="hubbub", status="published", external_id="post-1")
    hook_failed = TargetState(index=1, kind="webhook", status="failed", last_error="HTTP 410")
    hook_waiting = TargetState(index=1, kind="webhook", next_attempt_at=later,
                               last_error="HTTP 503")
    done = settle([hub], NOW)
    assert (done.status, done.post_id, done.next_attempt_at) == ("published", "post-1", None)
    retry = settle([hub, hook_waiting], NOW)
    assert (retry.status, retry.next_attempt_at, retry.post_id) == ("publishing", later,
                                                                    "post-1")
    failed = settle([hub, hook_failed], NOW)
    assert (failed.status, failed.post_id) == ("failed", "post-1")
    assert failed.last_error == "webhook: HTTP 410"
    assert settle([], NOW).status == "failed"
