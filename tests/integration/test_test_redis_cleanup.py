"""The test session's own Redis hygiene (tests/support/redis_keys.py): the keys under a
server's prefix go, nothing else does, and a prefix is taken literally, not as a pattern."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from tests.support import redis_keys
from tests.support.services import free_port

pytestmark = pytest.mark.integration


async def test_a_prefix_is_deleted_literally_and_alone(
    redis_url: str, redis_client: redis.Redis
) -> None:
    tag = uuid.uuid4().hex[:8]
    prefix = f"hubbub-test:{tag}:[a]*:"
    mine = [f"{prefix}presence:1", f"{prefix}chat:history:2", f"{prefix}cluster:version"]
    lookalike = f"hubbub-test:{tag}:a-other:presence:1"  # would match the prefix as a glob
    try:
        for key in [*mine, lookalike]:
            await redis_client.set(key, b"x")
        # Servers of this session may still be running: remember, but delete only ours.
        redis_keys.remember(redis_url, prefix)
        redis_keys.remember(redis_url, "hubbub:")  # the production default: never
        assert (redis_url, prefix) in redis_keys.remembered()
        assert (redis_url, "hubbub:") not in redis_keys.remembered()
        assert redis_keys.delete_prefix(redis_url, prefix) == len(mine)
        assert [k for k in mine if await redis_client.exists(k)] == []
        assert await redis_client.exists(lookalike)
    finally:
        await redis_client.delete(*mine, lookalike)


def test_an_unreachable_redis_deletes_nothing_and_does_not_raise() -> None:
    assert redis_keys.delete_prefix(f"redis://127.0.0.1:{free_port()}/0", "hubbub-x:") == 0
