"""The shared redis.asyncio client."""

from __future__ import annotations

import redis.asyncio as redis


def create_redis(url: str) -> redis.Redis:
    """A pooled client; connects lazily, so call `ping()` to check reachability."""
    return redis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30,
        socket_connect_timeout=5, socket_timeout=5, retry_on_timeout=True,
    )
