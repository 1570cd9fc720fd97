"""Accounts for end-to-end tests: sign up a fresh user over HTTP and keep its token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(http: aiohttp.ClientSession, prefix: str = "u") -> Account:
    """A new account with a unique username (`<prefix>_<hex>`), signed up through the API."""
    username = f"{prefix}_{uuid.uuid4().hex[:10]}"
    async with http.post("/v1/auth/signup", json={
        "username": username, "email": f"{username}@example.test", "password": PASSWORD,
    }) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return Account(id=body["user"]["id"], username=username, token=body["access_token"])
