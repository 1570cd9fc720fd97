"""redis-py's TCP connection, writing each command without a task of its own.

redis-py 8.1 bounds a command's write with `asyncio.wait_for`, which on Python 3.11 runs the
write in a new Task: a task, its scheduling and its wake-up for every command or pipeline
sent (about 5% of the server's CPU under chat load, where every message appends to the hot
history). `asyncio.timeout` bounds the same write in the caller's task. Everything else,
errors included, is redis-py's `send_packed_command` as of 8.1.0 (pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class InlineWriteConnection(redis.Connection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes],
                                  check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            async with asyncio.timeout(self.socket_timeout or None):
                self._writer.writelines(command)
                await self._writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            err_no, errmsg = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else e.args[:2]
            raise RedisConnectionError(
                f"Error {err_no} while writing to socket. {errmsg}.") from e
        except BaseException:
            # A write cut short leaves the protocol stream unusable: as redis-py, drop it.
            await self.disconnect(nowait=True)
            raise
