"""Publishing connections (contract, ../shared/API.md "Scheduling",
`GET|POST|DELETE /v1/publishing/connections`): the external accounts and webhooks a scheduled
post can target, and the row the store keeps for each.

Credentials (an X token, a webhook signing secret) are never part of a response, except the
webhook's `signing_secret` once, in the answer to its creation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from protocols import fields
from protocols.base import Inbound, Outbound

ConnectionKind = Literal["webhook", "x"]

WebhookUrl = fields.pattern(r"^[hH][tT][tT][pP][sS]?://[\x21-\x7e]+$(?!\n)",
                            "must be an absolute http(s) URL", max_length=2048,
                            description="An https URL; plain http only to 127.0.0.1 or localhost "
                            "where PUBLISHING_ALLOW_HTTP_LOCALHOST is on")
Token = fields.visible_ascii(max_length=4096)
Label = fields.line(max_length=100, description="A name of your choosing")
XName = fields.line(max_length=64)


class ConnectionCreate(Inbound, kw_only=True):
    """Connect an account. `webhook`: `url`. `x`: `access_token` (an OAuth 2.0 user access
    token with tweet.write, and media.write for images), optionally `refresh_token`,
    `expires_at`, and the X account's `external_user_id` / `username` (shown back to you)."""

    kind: ConnectionKind
    label: Label | None = None
    url: WebhookUrl | None = None
    access_token: Token | None = None
    refresh_token: Token | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    external_user_id: XName | None = None
    username: XName | None = None


class Connection(Outbound, kw_only=True):
    """A connection as listed: never its token or secret."""

    id: str
    kind: ConnectionKind
    label: str | None = None
    url: str | None = None  # webhook
    external_user_id: str | None = None  # x
    username: str | None = None  # x
    expires_at: datetime | None = None  # x: when the access token expires, if known
    created_at: datetime


class ConnectionCreated(Connection, kw_only=True):
    """The answer to a creation. `signing_secret` (webhook only, `whsec_` + base64 of 32
    random bytes, the Standard Webhooks format) is shown this once: keep it to verify
    deliveries."""

    signing_secret: str | None = None


class ConnectionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored connection. `sealed` is the encrypted credentials (server.publishing.crypto):
    the store never sees them in clear."""

    id: str
    user_id: str
    kind: ConnectionKind
    label: str | None = None
    url: str | None = None
    external_user_id: str | None = None
    username: str | None = None
    expires_at: datetime | None = None
    sealed: bytes
    created_at: datetime


class Credentials(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What `ConnectionRecord.sealed` holds once opened (msgspec JSON)."""

    signing_secret: str | None = None  # webhook: whsec_...
    access_token: str | None = None  # x
    refresh_token: str | None = None  # x
