"""Socket.IO connections are authenticated by the access JWT."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from tests.e2e.live import mint_token, signup
from tests.support.server import HubbubProcess


@pytest.mark.parametrize("auth", [None, {"token": "not-a-jwt"}, {"token": 42}])
async def test_bad_token_is_refused_with_unauthorized(
    hubbub: HubbubProcess, auth: object
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refused: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @client.event
    async def connect_error(data: object) -> None:
        if not refused.done():
            refused.set_result(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hubbub.base_url, auth=auth, transports=["websocket"],
                             wait_timeout=10)
    # The JavaScript client exposes these as err.message and err.data.
    assert await asyncio.wait_for(refused, 10) == {
        "message": "unauthorized", "data": {"code": "unauthorized"},
    }
    await client.disconnect()


async def test_expired_token_is_refused(hubbub: HubbubProcess,
                                       http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "exp")
    client = socketio.AsyncClient(reconnection=False)
    refused: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @client.event
    async def connect_error(data: object) -> None:
        if not refused.done():
            refused.set_result(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hubbub.base_url, auth={"token": mint_token(ann.id, -5)},
                             transports=["websocket"], wait_timeout=10)
    assert await asyncio.wait_for(refused, 10) == {
        "message": "unauthorized", "data": {"code": "unauthorized"},
    }
    await client.disconnect()
