"""What an X API v2 answer means for a publish, and the rate-limit headers it carries.

X answers errors as problem details ({title, detail, type, status}, sometimes with an
`errors` list) and every answer with `x-rate-limit-limit`, `x-rate-limit-remaining` and
`x-rate-limit-reset` (Unix seconds when the window resets).

| answer                          | code                | kind                              |
| ------------------------------- | ------------------- | --------------------------------- |
| 429                             | rate_limited        | transient, until x-rate-limit-reset |
| 5xx                             | server_error        | transient (Retry-After honoured)  |
| 401                             | token_revoked       | permanent                         |
| 403 "...duplicate content..."   | duplicate_content   | permanent                         |
| 403 "...suspended..."           | account_suspended   | permanent                         |
| other 403                       | forbidden           | permanent                         |
| 400                             | invalid_request     | permanent                         |
| other 4xx                       | rejected            | permanent                         |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols.publishing import PublishFailed
from server.publishing.http_errors import retry_after


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    reset_at: float | None  # Unix seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit:
        return cls(limit=_int(headers.get("x-rate-limit-limit")),
                   remaining=_int(headers.get("x-rate-limit-remaining")),
                   reset_at=_int(headers.get("x-rate-limit-reset")))

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0 and self.reset_at is not None

    def wait(self, now: float) -> float | None:
        """Seconds until the reset (at least one: X counts whole seconds), None if unknown."""
        return None if self.reset_at is None else max(1.0, self.reset_at - now)


def x_failure(status: int, body: Any, headers: Mapping[str, str], now: float) -> PublishFailed:
    """The PublishFailed for a non-2xx answer of the X API."""
    detail = _detail(body)
    message = f"X API answered HTTP {status}" + (f": {detail}" if detail else "")
    lowered = detail.lower()
    if status == 429:
        wait = RateLimit.from_headers(headers).wait(now)
        return PublishFailed("rate_limited", message, permanent=False,
                             retry_after=wait if wait is not None else retry_after(headers, now))
    if status >= 500:
        return PublishFailed("server_error", message, permanent=False,
                             retry_after=retry_after(headers, now))
    if status == 401:
        return PublishFailed("token_revoked", message, permanent=True)
    if status == 403 and "duplicate" in lowered:
        return PublishFailed("duplicate_content", message, permanent=True)
    if status == 403 and "suspended" in lowered:
        return PublishFailed("account_suspended", message, permanent=True)
    if status == 403:
        return PublishFailed("forbidden", message, permanent=True)
    if status == 400:
        return PublishFailed("invalid_request", message, permanent=True)
    return PublishFailed("rejected", message, permanent=True)


def _detail(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [body.get("detail"), body.get("title") if not body.get("detail") else None]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            parts.append(error.get("detail") or error.get("message"))
    return "; ".join(str(part) for part in parts if part)[:500]


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
