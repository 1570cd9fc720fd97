"""Targets a scheduled post may name (the publisher registry), and the notifications the
scheduling events make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols.events import PostCancelled, PostFailed, PostPublished, ScheduledTargetResult
from protocols.ids import new_id
from protocols.scheduling import TargetSpec
from server.http.problems import ValidationFailed
from server.notifications.rules import drafts_for
from server.scheduling.registry import PublishingRegistry
from tests.unit.scheduling.kit import ScriptedPublisher

USER, CONNECTION, OTHER = new_id(), new_id(), new_id()
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> PublishingRegistry:
    registry = PublishingRegistry()
    registry.add(ScriptedPublisher("hubbub"))

    async def owns(user_id: str, connection_id: str) -> bool:
        return (user_id, connection_id) == (USER, CONNECTION)

    registry.add(ScriptedPublisher("webhook"), connection_check=owns)
    return registry


async def test_default_and_valid_targets(registry: PublishingRegistry) -> None:
    [default] = await registry.targets(USER, None)
    assert (default.kind, default.connection_id) == ("hubbub", None)
    targets = await registry.targets(USER, [TargetSpec(kind="hubbub"), TargetSpec(
        kind="webhook", connection_id=CONNECTION.upper())])
    assert [(t.kind, t.connection_id) for t in targets] == [("hubbub", None),
                                                            ("webhook", CONNECTION)]


@pytest.mark.parametrize(("specs", "code", "field"), [
    ([TargetSpec(kind="x", connection_id=CONNECTION)], "unsupported_target", "targets[0].kind"),
    ([TargetSpec(kind="hubbub", connection_id=CONNECTION)], "invalid_target",
     "targets[0].connection_id"),
    ([TargetSpec(kind="webhook")], "connection_required", "targets[0].connection_id"),
    ([TargetSpec(kind="hubbub"), TargetSpec(kind="hubbub")], "duplicate_target", "targets[1]"),
    ([TargetSpec(kind="webhook", connection_id=OTHER)], "unknown_connection",
     "targets[0].connection_id"),
])
async def test_bad_targets_are_named(registry: PublishingRegistry, specs: list[TargetSpec],
                                     code: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await registry.targets(USER, specs)
    assert refused.value.code == code
    assert [e.field for e in refused.value.errors or []] == [field]


def test_published_and_failed_posts_notify_their_author() -> None:
    scheduled, post = new_id(), new_id()
    [published] = drafts_for(PostPublished(scheduled_post_id=scheduled, author_id=USER,
                                           post_id=post, scheduled_for=NOW, published_at=NOW))
    assert (published.user_id, published.kind, published.actor_id, published.post_id) == (
        USER, "post_published", None, post)
    assert published.data == {"scheduled_post_id": scheduled}
    [failed] = drafts_for(PostFailed(
        scheduled_post_id=scheduled, author_id=USER, failed_at=NOW, error="x: revoked",
        targets=[ScheduledTargetResult(index=0, kind="hubbub", status="published"),
                 ScheduledTargetResult(index=1, kind="x", status="failed")]))
    assert (failed.kind, failed.post_id) == ("post_failed", None)
    assert failed.data == {"scheduled_post_id": scheduled, "error": "x: revoked",
                           "failed_targets": ["x"]}
    assert drafts_for(PostCancelled(scheduled_post_id=scheduled, author_id=USER,
                                    cancelled_at=NOW)) == []
