"""The `webhook` Publisher: a POST signed per Standard Webhooks (server.publishing.signing) to
the URL of the target's connection.

Body (JSON): {"type": "post.published", "timestamp": RFC 3339, "data": {scheduled_post_id,
target_index, author_id, text, media_ids, attempt}}. `webhook-id` is the target's
`PublishRequest.idempotency_key`, the same on every attempt, so a receiver that saw a delivery
whose answer got lost dedupes the retry; `webhook-timestamp` is this attempt's time.

Answers: 2xx published; 408, 429 and 5xx, timeouts and connection errors transient (a
`Retry-After` is honoured); redirects (not followed: the URL the user gave is the one we
sign for) and other 4xx permanent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import msgspec

from actors.clock import Clock
from protocols.publishing import PublishFailed, PublishRequest, PublishResult, TargetKind
from server.publishing import signing
from server.publishing.crypto import SealError
from server.publishing.http_errors import TRANSPORT_ERRORS, retry_after, transport_failure
from server.publishing.service import ConnectionService

EVENT_TYPE = "post.published"
_encode = msgspec.json.Encoder().encode
_TRANSIENT = {408, 425, 429}


class WebhookData(msgspec.Struct, frozen=True, kw_only=True):
    scheduled_post_id: str
    target_index: int
    author_id: str
    text: str
    media_ids: list[str]
    attempt: int


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    timestamp: datetime
    data: WebhookData


class WebhookPublisher:
    kind: TargetKind = "webhook"

    def __init__(self, connections: ConnectionService, session: aiohttp.ClientSession,
                 clock: Clock, *, timeout: float) -> None:
        self._connections = connections
        self._session = session
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def publish(self, request: PublishRequest) -> PublishResult:
        url, secret = await self._target(request)
        now = self._clock.time()
        body = _encode(WebhookPayload(
            type=EVENT_TYPE, timestamp=datetime.fromtimestamp(now, UTC),
            data=WebhookData(scheduled_post_id=request.scheduled_post_id,
                             target_index=request.target_index, author_id=request.author_id,
                             text=request.text, media_ids=list(request.media_ids),
                             attempt=request.attempt)))
        headers = {"Content-Type": "application/json", "User-Agent": "Hubbub-Webhooks/1",
                   **signing.headers(secret, request.idempotency_key, int(now), body)}
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=self._timeout,
                                          allow_redirects=False) as response:
                await response.read()
                status, answer_headers = response.status, response.headers
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "the webhook") from None
        if 200 <= status < 300:
            return PublishResult()
        message = f"the webhook answered HTTP {status}"
        if status >= 500 or status in _TRANSIENT:
            code = "rate_limited" if status == 429 else "server_error"
            raise PublishFailed(code, message, permanent=False,
                                retry_after=retry_after(answer_headers, self._clock.time()))
        code = "webhook_redirected" if 300 <= status < 400 else "webhook_rejected"
        raise PublishFailed(code, message, permanent=True)

    async def _target(self, request: PublishRequest) -> tuple[str, str]:
        if request.connection_id is None:
            raise PublishFailed("connection_required", "a webhook target needs a connection",
                                permanent=True)
        try:
            found = await self._connections.open(self.kind, request.author_id,
                                                 request.connection_id)
        except SealError:
            # Transient: a node with the wrong keys should not fail what its peers can send.
            raise PublishFailed("credentials_unreadable", "the webhook's secret cannot be "
                                "decrypted with PUBLISHING_ENCRYPTION_KEY", permanent=False
                                ) from None
        if found is None:
            raise PublishFailed("connection_removed", "the webhook connection was removed",
                                permanent=True)
        record, credentials = found
        if record.url is None or credentials.signing_secret is None:
            raise PublishFailed("connection_invalid", "the webhook has no url or secret",
                                permanent=True)
        return record.url, credentials.signing_secret
