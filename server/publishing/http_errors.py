"""What an HTTP answer or a transport error means for a publish (shared by the publishers)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import aiohttp

from protocols.publishing import PublishFailed


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or an HTTP date), None when absent or bad."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
    except (TypeError, ValueError):
        return None


def transport_failure(exc: BaseException, what: str) -> PublishFailed:
    """A timeout or a connection error: the target may come back, so transient."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return PublishFailed("timeout", f"{what} did not answer in time", permanent=False)
    if isinstance(exc, aiohttp.ClientError):
        return PublishFailed("connection_failed", f"{what}: {type(exc).__name__}: {exc}",
                             permanent=False)
    raise TypeError(f"not a transport error: {exc!r}")


TRANSPORT_ERRORS = (TimeoutError, asyncio.TimeoutError, aiohttp.ClientError)
