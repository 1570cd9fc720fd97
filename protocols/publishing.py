"""What a Publisher is given and gives back (server/scheduling/ports.py). No I/O."""

from __future__ import annotations

from typing import Literal

import msgspec

TargetKind = Literal["hubbub", "webhook", "x"]


class PublishRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One target of one scheduled post, on one attempt. `idempotency_key` is the same on
    every attempt for this (post, target): a publisher passes it on where the target supports
    it, so a retry after an ambiguous failure never publishes twice."""

    scheduled_post_id: str
    target_index: int
    author_id: str
    text: str
    media_ids: list[str] = []
    connection_id: str | None = None  # external account / webhook (not for `hubbub`)
    idempotency_key: str
    attempt: int = 1


class PublishResult(msgspec.Struct, frozen=True, kw_only=True):
    """A published target: the id (and URL, when there is one) where it now lives."""

    external_id: str | None = None
    url: str | None = None


class PublishFailed(Exception):
    """A target could not be published. `permanent` failures (a 4xx such as duplicate
    content, a revoked token, a suspended account) are not retried; transient ones (timeouts,
    5xx, 429) are, after `retry_after` seconds when the target said so. `code` is stable and
    machine-readable (e.g. "duplicate_content", "token_revoked", "rate_limited", "timeout",
    "server_error")."""

    def __init__(self, code: str, message: str, *, permanent: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
