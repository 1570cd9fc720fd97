"""Socket.IO connections are authenticated by the access JWT; signing out everywhere
(logout_all, a password reset) closes the user's sockets on every node at once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import aiohttp
import pytest
import socketio

from tests.e2e.live import DEADLINE, Live, mint_token, signup
from tests.support.polling import eventually
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


SHARED = ("DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "JWT_SECRET",
          "RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_ROUTES")


@pytest.fixture(scope="module")
def other_node(hubbub: HubbubProcess) -> Iterator[HubbubProcess]:
    """A second node of the shared server's cluster (same stores and Redis prefix)."""
    node = HubbubProcess({key: hubbub.env[key] for key in SHARED} | {"NODE_ID": "auth-two"})
    node.start()
    yield node
    assert node.stop() == 0


async def _connect_refusal(base_url: str, token: str) -> object:
    """What a connect with `token` is refused with (fails the test when it is accepted)."""
    client = socketio.AsyncClient(reconnection=False)
    refused: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    @client.event
    async def connect_error(data: object) -> None:
        if not refused.done():
            refused.set_result(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(base_url, auth={"token": token}, transports=["websocket"],
                             wait_timeout=10)
    await client.disconnect()
    return await asyncio.wait_for(refused, 10)


UNAUTHORIZED = {"message": "unauthorized", "data": {"code": "unauthorized"}}


async def _revoked_on_rest(http: aiohttp.ClientSession, token: str) -> None:
    async with http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401, await resp.text()
        assert (await resp.json())["code"] == "token_revoked"


async def test_logout_all_closes_the_users_sockets_on_every_node(
    hubbub: HubbubProcess, other_node: HubbubProcess, http: aiohttp.ClientSession
) -> None:
    ann, bob = await signup(http, "all"), await signup(http, "stays")
    here = await Live.connect(hubbub.base_url, ann.token)
    there = await Live.connect(other_node.base_url, ann.token)
    bystander = await Live.connect(other_node.base_url, bob.token)

    async with http.post("/v1/auth/logout_all", headers=ann.auth) as response:
        assert response.status == 204, await response.text()
    await asyncio.wait_for(here.disconnected.wait(), DEADLINE)
    await asyncio.wait_for(there.disconnected.wait(), DEADLINE)

    await _revoked_on_rest(http, ann.token)
    for base_url in (hubbub.base_url, other_node.base_url):
        assert await _connect_refusal(base_url, ann.token) == UNAUTHORIZED
    # Another user's socket on either node is untouched.
    await bystander.ok("presence:set", {"status": "away"})
    assert not bystander.disconnected.is_set()
    await bystander.close()


async def test_password_reset_closes_the_users_sockets(
    hubbub: HubbubProcess, http: aiohttp.ClientSession
) -> None:
    ann = await signup(http, "reset")
    email = f"{ann.username}@example.test"
    live = await Live.connect(hubbub.base_url, ann.token)
    async with http.post("/v1/auth/password/forgot", json={"email": email}) as response:
        assert response.status == 202

    def mails() -> list[dict[str, object]]:
        return [e for e in hubbub.logs()
                if e.get("logger") == "hubbub.mail" and e.get("mail_to") == email]

    async def mailed() -> bool:
        return bool(mails())

    await eventually(mailed, DEADLINE, "the reset code in the log")
    code = re.search(r"\b(\d{6})\b", str(mails()[-1]["mail_body"]))
    assert code
    async with http.post("/v1/auth/password/reset", json={
        "email": email, "code": code.group(1), "new_password": "a brand new password",
    }) as response:
        assert response.status == 204, await response.text()

    await asyncio.wait_for(live.disconnected.wait(), DEADLINE)
    await _revoked_on_rest(http, ann.token)
    assert await _connect_refusal(hubbub.base_url, ann.token) == UNAUTHORIZED


async def test_a_token_with_too_long_a_lifetime_is_refused(
    hubbub: HubbubProcess, http: aiohttp.ClientSession
) -> None:
    ann = await signup(http, "long")
    assert await _connect_refusal(hubbub.base_url, mint_token(ann.id, 3600)) == UNAUTHORIZED
    live = await Live.connect(hubbub.base_url, mint_token(ann.id, 900))
    ack = await live.call("auth:refresh", {"token": mint_token(ann.id, 7 * 86400)})
    assert ack["ok"] is False and ack["error"]["code"] == "unauthorized"
    await live.close()
