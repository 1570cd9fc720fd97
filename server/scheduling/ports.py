"""The publishing port: one Publisher per target kind (hubbub, webhook, x)."""

from __future__ import annotations

from typing import Protocol

from protocols.publishing import PublishRequest, PublishResult, TargetKind


class Publisher(Protocol):
    kind: TargetKind

    async def publish(self, request: PublishRequest) -> PublishResult:
        """Publish one target of a scheduled post. Raises protocols.publishing.PublishFailed
        (permanent or transient); any other exception counts as transient. Must be idempotent
        per `request.idempotency_key` where the target allows it."""
        ...
