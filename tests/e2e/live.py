"""A python-socketio client for e2e tests that records every event it receives, so a test can
await "the next `message:new` whose seq is 3" with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import socketio

from tests.e2e.conftest import JWT_SECRET
from tests.support.accounts import PASSWORD, Account, signup  # noqa: F401 (re-exported)

DEADLINE = 10.0






def mint_token(user_id: str, ttl: float) -> str:
    """An access token for user_id expiring in `ttl` seconds, signed with the e2e secret."""
    now = int(time.time())
    return jwt.encode({
        "iss": "hubbub", "aud": "hubbub-api", "sub": user_id, "role": "user",
        "iat": now, "nbf": now, "exp": now + int(ttl), "jti": str(uuid.uuid4()),
    }, JWT_SECRET, algorithm="HS256")


@dataclass
class Live:
    """One connected socket and everything it received, in order."""

    client: socketio.AsyncClient
    received: list[tuple[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _taken: set[int] = field(default_factory=set)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(cls, base_url: str, token: str) -> Live:
        client = socketio.AsyncClient(reconnection=False)
        live = cls(client)

        @client.on("*")
        async def any_event(event: str, data: Any = None) -> None:
            live.received.append((event, data))
            live._changed.set()

        @client.event
        async def disconnect(reason: Any = None) -> None:
            live.disconnected.set()
            live._changed.set()

        await client.connect(base_url, auth={"token": token}, transports=["websocket"],
                             wait_timeout=DEADLINE)
        return live

    async def call(self, event: str, data: Any = None, *, timeout: float = DEADLINE) -> Any:
        """Emit with an ack and return the ack's payload."""
        return await self.client.call(event, data, timeout=timeout)

    async def ok(self, event: str, data: Any = None) -> dict[str, Any]:
        ack = await self.call(event, data)
        assert ack.get("ok") is True, ack
        return ack

    async def expect(self, event: str, where: Callable[[Any], bool] = lambda _: True, *,
                     timeout: float = DEADLINE) -> Any:
        """The first not-yet-taken `event` whose data satisfies `where`, waiting for it."""
        async with asyncio.timeout(timeout):
            while True:
                for index, (name, data) in enumerate(self.received):
                    if index not in self._taken and name == event and where(data):
                        self._taken.add(index)
                        return data
                self._changed.clear()
                await self._changed.wait()

    async def collect(self, event: str, count: int, where: Callable[[Any], bool] = lambda _: True,
                      *, timeout: float = DEADLINE) -> list[Any]:
        async with asyncio.timeout(timeout):
            return [await self.expect(event, where, timeout=timeout) for _ in range(count)]

    async def arrivals_beyond(self, count: int, timeout: float) -> None:
        """Until more than `count` events have arrived or the socket dropped, `timeout`
        seconds at most (returns either way: the caller looks at what it has)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self.received) <= count and not self.disconnected.is_set():
                    self._changed.clear()
                    await self._changed.wait()

    def seen(self, event: str, where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
        return [data for name, data in self.received if name == event and where(data)]

    async def close(self) -> None:
        await self.client.disconnect()
