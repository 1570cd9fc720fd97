"""RFC 9457 problem details, the body of every REST error."""

from __future__ import annotations

import msgspec

from protocols.base import Outbound


class FieldError(Outbound):
    field: str
    message: str


class Problem(Outbound):
    """`application/problem+json`. `code` is stable and machine-readable; `title` is for people."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET
    retry_after: int | msgspec.UnsetType = msgspec.UNSET
