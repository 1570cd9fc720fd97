"""The closed catalogue of client-facing REST errors, rendered as RFC 9457 problem details.

Raise a `ProblemError` (or a subclass) anywhere below a handler; the error middleware turns it
into `application/problem+json`. Each class fixes the HTTP status; `code` is the stable,
machine-readable reason clients switch on.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from aiohttp import web

from protocols.problems import FieldError, Problem

PROBLEM_CONTENT_TYPE = "application/problem+json"
_encoder = msgspec.json.Encoder()


class ProblemError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"
    default_code: ClassVar[str] = "internal"
    temporary: ClassVar[bool] = False  # true when retrying the same request may succeed

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = errors

    def to_problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=f"urn:hubbub:problem:{self.code}",
            title=self.title,
            status=self.status,
            code=self.code,
            detail=self.detail,
            instance=instance,
            errors=self.errors if self.errors is not None else msgspec.UNSET,
        )

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(ProblemError):
    status, title, default_code = 400, "Malformed request", "malformed"


class Unauthorized(ProblemError):
    status, title, default_code = 401, "Authentication required", "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="hubbub"'}


class Forbidden(ProblemError):
    status, title, default_code = 403, "Not allowed", "forbidden"


class NotFound(ProblemError):
    status, title, default_code = 404, "Not found", "not_found"


class MethodNotAllowed(ProblemError):
    status, title, default_code = 405, "Method not allowed", "method_not_allowed"


class Conflict(ProblemError):
    status, title, default_code = 409, "Conflict", "conflict"


class PayloadTooLarge(ProblemError):
    status, title, default_code = 413, "Payload too large", "too_large"


class UnsupportedMediaType(ProblemError):
    status, title, default_code = 415, "Unsupported media type", "unsupported_media_type"


class ValidationFailed(ProblemError):
    status, title, default_code = 422, "Validation failed", "invalid"


class RateLimited(ProblemError):
    status, title, default_code = 429, "Too many requests", "rate_limited"
    temporary = True

    def __init__(self, retry_after: float, detail: str | None = None, *, code: str | None = None):
        super().__init__(detail or "Slow down and retry later", code=code)
        self.retry_after = max(1, int(retry_after + 0.999))

    def to_problem(self, instance: str | None = None) -> Problem:
        return msgspec.structs.replace(super().to_problem(instance), retry_after=self.retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(ProblemError):
    status, title, default_code = 503, "Service unavailable", "unavailable"
    temporary = True


def problem_response(error: ProblemError, instance: str | None = None) -> web.Response:
    return web.Response(
        status=error.status,
        body=_encoder.encode(error.to_problem(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers(),
    )
