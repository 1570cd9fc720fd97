"""The shared redis.asyncio client."""

from __future__ import annotations

import redis
import redis.asyncio
from redis.driver_info import DriverInfo

from storage.redis.connection import InlineWriteConnection
from storage.redis.multiplexed import MultiplexedRedis

# Seconds a command waits for a free pooled connection before failing.
POOL_TIMEOUT = 5.0
# What each pooled connection tells Redis (CLIENT SETINFO), made once: left to redis-py, every
# new connection looks its version up in the installed packages' metadata, a scan of
# sys.path that held the loop for milliseconds when a burst opened connections.
DRIVER = DriverInfo(name="redis-py", lib_version=redis.__version__)


def create_redis(url: str, max_connections: int = 200) -> redis.asyncio.Redis:
    """A pooled client; connects lazily, so call `ping()` to check reachability.

    The pool blocks when all `max_connections` are busy: redis-py's default pool raises
    "Too many connections" instead, which a burst of socket closes (each a few commands) on
    a busy node turned into lost presence saves and failed heartbeats.
    """
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_TIMEOUT, decode_responses=False,
        health_check_interval=30, socket_connect_timeout=5, socket_timeout=5,
        retry_on_timeout=True, driver_info=DRIVER)
    if pool.connection_class is not redis.asyncio.Connection:  # TLS or a unix socket
        return redis.asyncio.Redis(connection_pool=pool)
    # Plain TCP: plain commands share one pipelined connection (storage/redis/multiplexed.py);
    # pipelines, pub/sub and blocking commands use the pool.
    pool.connection_class = InlineWriteConnection
    return MultiplexedRedis(connection_pool=pool)
