"""How X API v2 answers map onto publish outcomes (server/publishing/x_errors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from server.publishing.x_errors import RateLimit, x_failure

NOW = 1_800_000_000.0


def problem(status: int, detail: str, title: str = "x") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}


@pytest.mark.parametrize(("status", "body", "headers", "code", "permanent", "retry_after"), [
    (429, problem(429, "Too Many Requests"), {"x-rate-limit-remaining": "0",
                                               "x-rate-limit-reset": str(int(NOW) + 90)},
     "rate_limited", False, 90.0),
    # A reset already past (clock skew): wait at least a second, never zero or negative.
    (429, None, {"x-rate-limit-reset": str(int(NOW) - 5)}, "rate_limited", False, 1.0),
    (429, None, {"Retry-After": "30"}, "rate_limited", False, 30.0),
    (503, problem(503, "Service Unavailable"), {"Retry-After": "7"}, "server_error", False, 7.0),
    (500, None, {}, "server_error", False, None),
    (401, problem(401, "Unauthorized"), {}, "token_revoked", True, None),
    (403, problem(403, "You are not allowed to create a Tweet with duplicate content."), {},
     "duplicate_content", True, None),
    (403, {"errors": [{"message": "Your account is suspended"}], "title": "Forbidden"}, {},
     "account_suspended", True, None),
    (403, problem(403, "You are not permitted to perform this action."), {}, "forbidden", True,
     None),
    (400, problem(400, "One or more parameters is invalid."), {}, "invalid_request", True,
     None),
    (404, None, {}, "rejected", True, None),
    (422, "not json at all", {}, "rejected", True, None),
])
def test_the_error_table(status: int, body: Any, headers: dict[str, str], code: str,
                         permanent: bool, retry_after: float | None) -> None:
    failed = x_failure(status, body, headers, NOW)
    assert (failed.code, failed.permanent, failed.retry_after) == (code, permanent, retry_after)
    assert str(status) in failed.message


def test_rate_limit_headers() -> None:
    limit = RateLimit.from_headers({"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                                    "x-rate-limit-reset": "1800000060"})
    assert limit.exhausted and limit.wait(NOW) == 60.0 and limit.limit == 100
    assert not RateLimit.from_headers({"x-rate-limit-remaining": "3"}).exhausted
    assert RateLimit.from_headers({"x-rate-limit-reset": "soon"}).reset_at is None
