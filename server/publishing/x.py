"""The `x` Publisher: a post through the X API v2 with the user's OAuth 2.0 token.

    POST {X_API_BASE_URL}/2/media/upload   multipart: media, media_category=tweet_image
        -> {"data": {"id": "...", "media_key": "...", ...}}      (one per image)
    POST {X_API_BASE_URL}/2/tweets         {"text": ..., "media": {"media_ids": [...]}}
        -> 201 {"data": {"id": "...", "text": "..."}}

Both with `Authorization: Bearer <user access token>`. Plain aiohttp: tweepy's AsyncClient
fixes the host (api.twitter.com, so no local test server), has no v2 media upload and sleeps
inside the call on a 429; the official `xdk` is synchronous.

Rate limits: an answer with `x-rate-limit-remaining: 0` closes the connection's gate until
`x-rate-limit-reset` on this node (later publishes wait without asking X) and is reported as
`rate_limit.reached`; a 429 fails the attempt as `rate_limited` with `retry_after` = reset -
now, and the scheduler queues the target until then (and reports it).

Idempotency: X takes no idempotency key. A retry after an answer that got lost may meet X's
duplicate-content check (403 `duplicate_content`, permanent) rather than post twice.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from actors.clock import Clock
from protocols.publishing import PublishFailed, PublishRequest, PublishResult, TargetKind
from server.publishing.crypto import SealError
from server.publishing.http_errors import TRANSPORT_ERRORS, transport_failure
from server.publishing.service import ConnectionService
from server.publishing.x_errors import RateLimit, x_failure

# (owner id, media id) -> (bytes, content type), None when it is not the owner's ready media.
MediaReader = Callable[[str, str], Awaitable[tuple[bytes, str] | None]]


class RateLimitSink(Protocol):
    """Where `rate_limit.reached` goes for a limit seen on a success: the scheduling area's
    RateLimitReporter (server.scheduling.rate_limits), which writes it to the outbox."""

    async def reached(self, *, kind: str, user_id: str, connection_id: str | None = None,
                      scheduled_post_id: str | None = None, reset_at: datetime | None = None,
                      limit: int | None = None, remaining: int | None = None) -> None: ...


class DropRateLimits:
    """A RateLimitSink that drops the report (before scheduling is wired, and in tests)."""

    async def reached(self, *, kind: str, user_id: str, connection_id: str | None = None,
                      scheduled_post_id: str | None = None, reset_at: datetime | None = None,
                      limit: int | None = None, remaining: int | None = None) -> None:
        pass


class XPublisher:
    kind: TargetKind = "x"

    def __init__(self, connections: ConnectionService, session: aiohttp.ClientSession,
                 clock: Clock, *, base_url: str, timeout: float, media: MediaReader,
                 rate_limits: Callable[[], RateLimitSink]) -> None:
        self._connections = connections
        self._session = session
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._media = media
        self._rate_limits = rate_limits
        # connection id -> Unix second its window resets; only a hint (per node, lost at
        # restart): X's own 429 stays the authority.
        self._closed_until: dict[str, float] = {}

    async def publish(self, request: PublishRequest) -> PublishResult:
        connection_id, token = await self._token(request)
        reopens = self._closed_until.get(connection_id, 0.0)
        now = self._clock.time()
        if reopens > now:
            raise PublishFailed("rate_limited", "the X rate limit of this account is spent "
                                "until its reset", permanent=False, retry_after=reopens - now)
        self._closed_until.pop(connection_id, None)
        media_ids = [await self._upload(request, connection_id, token, media_id)
                     for media_id in request.media_ids]
        body: dict[str, Any] = {"text": request.text}
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        answer = await self._call(request, connection_id, token, "/2/tweets", json=body)
        post_id = _data_id(answer)
        return PublishResult(external_id=post_id, url=f"https://x.com/i/status/{post_id}")

    async def _upload(self, request: PublishRequest, connection_id: str, token: str,
                      media_id: str) -> str:
        found = await self._media(request.author_id, media_id)
        if found is None:
            raise PublishFailed("invalid_media", f"media {media_id} is not a ready upload of "
                                "the author's", permanent=True)
        data, content_type = found
        form = aiohttp.FormData()
        form.add_field("media", data, content_type=content_type, filename=media_id)
        form.add_field("media_category", "tweet_image")
        form.add_field("media_type", content_type)
        answer = await self._call(request, connection_id, token, "/2/media/upload", data=form)
        return _data_id(answer)

    async def _call(self, request: PublishRequest, connection_id: str, token: str, path: str,
                    **body: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "Hubbub/1"}
        try:
            async with self._session.post(self._base + path, headers=headers,
                                          timeout=self._timeout, allow_redirects=False,
                                          **body) as response:
                status, answer_headers = response.status, response.headers
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "the X API") from None
        answer = _json(raw)
        limit = RateLimit.from_headers(answer_headers)
        if 200 <= status < 300:
            if limit.exhausted:
                await self._exhausted(request, connection_id, limit)
            return answer
        if status == 429 and limit.reset_at is not None:
            self._closed_until[connection_id] = float(limit.reset_at)
        raise x_failure(status, answer, answer_headers, self._clock.time())

    async def _exhausted(self, request: PublishRequest, connection_id: str,
                         limit: RateLimit) -> None:
        assert limit.reset_at is not None
        self._closed_until[connection_id] = float(limit.reset_at)
        await self._rate_limits().reached(
            kind=self.kind, user_id=request.author_id, connection_id=connection_id,
            scheduled_post_id=request.scheduled_post_id,
            reset_at=datetime.fromtimestamp(limit.reset_at, UTC), limit=limit.limit,
            remaining=limit.remaining)

    async def _token(self, request: PublishRequest) -> tuple[str, str]:
        if request.connection_id is None:
            raise PublishFailed("connection_required", "an x target needs a connection",
                                permanent=True)
        try:
            found = await self._connections.open(self.kind, request.author_id,
                                                 request.connection_id)
        except SealError:
            # Transient: a node with the wrong keys should not fail what its peers can send.
            raise PublishFailed("credentials_unreadable", "the X token cannot be decrypted "
                                "with PUBLISHING_ENCRYPTION_KEY", permanent=False) from None
        if found is None:
            raise PublishFailed("connection_removed", "the X connection was removed",
                                permanent=True)
        record, credentials = found
        if credentials.access_token is None:
            raise PublishFailed("connection_invalid", "the X connection has no token",
                                permanent=True)
        return record.id, credentials.access_token


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # not JSON: the answer is judged by its status alone
        return None


def _data_id(answer: Any) -> str:
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, Mapping) or not data.get("id"):
        # A 2xx without an id: something answered that is not the X API as documented.
        raise PublishFailed("invalid_response", "X API answered without data.id",
                            permanent=False)
    return str(data["id"])
