"""A live connection's token: it expires (the socket is closed) unless `auth:refresh`ed."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp

from tests.e2e.live import Live, mint_token, signup
from tests.support.server import HubbubProcess


async def test_a_connection_whose_token_expires_is_closed(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann = await signup(http, "short")
    live = await Live.connect(hubbub.base_url, mint_token(ann.id, 2))
    assert (await live.call("presence:subscribe", {"user_ids": []}))["ok"] is True
    await asyncio.wait_for(live.disconnected.wait(), 10)
    assert not live.client.connected


async def test_auth_refresh_extends_the_connection(
        hubbub: HubbubProcess, http: aiohttp.ClientSession) -> None:
    ann, bob = await signup(http, "refr"), await signup(http, "other")
    live = await Live.connect(hubbub.base_url, mint_token(ann.id, 2))
    ack = await live.ok("auth:refresh", {"token": ann.token})
    assert datetime.fromisoformat(ack["expires_at"]).timestamp() > \
        datetime.now().timestamp() + 60

    bad = await live.call("auth:refresh", {"token": "not-a-jwt"})
    assert bad["ok"] is False and bad["error"]["code"] == "unauthorized"
    theirs = await live.call("auth:refresh", {"token": bob.token})
    assert theirs["ok"] is False and theirs["error"]["code"] == "forbidden"
    expired = await live.call("auth:refresh", {"token": mint_token(ann.id, -1)})
    assert expired["ok"] is False and expired["error"]["code"] == "unauthorized"

    # A witness minted after ann's short token, and never refreshed: once the server has
    # closed it, ann's original expiry has passed too.
    witness = await Live.connect(hubbub.base_url, mint_token(bob.id, 2))
    await asyncio.wait_for(witness.disconnected.wait(), 10)
    assert live.client.connected and not live.disconnected.is_set()
    assert (await live.call("presence:subscribe", {"user_ids": []}))["ok"] is True
    await live.close()
