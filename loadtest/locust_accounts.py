"""Accounts for simulated users: sign-up through the API and access-token upkeep (a refresh
before the token runs out, as a real client does)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from locust.contrib.fasthttp import FastHttpSession
from locust_settings import PASSWORD

REFRESH_MARGIN = 60.0  # seconds before expiry at which a client refreshes


class SignupFailed(Exception):
    pass


@dataclass
class Account:
    user_id: str
    username: str
    access_token: str
    refresh_token: str
    expires_at: float  # time.monotonic()

    @property
    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def take(self, answer: dict[str, Any]) -> None:
        """Keep the pair an auth answer carries (signup, login, refresh)."""
        self.access_token = answer["access_token"]
        self.refresh_token = answer["refresh_token"]
        self.expires_at = time.monotonic() + float(answer.get("expires_in", 900))


def signup(client: FastHttpSession, prefix: str, name: str = "/v1/auth/signup") -> Account:
    """A fresh account; raises SignupFailed (the request is reported as failed)."""
    username = f"{prefix}_{uuid.uuid4().hex[:12]}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD,
            "display_name": f"{prefix.title()} {username[-4:]}"}
    with client.post("/v1/auth/signup", json=body, name=name, catch_response=True) as response:
        if response.status_code != 201:
            response.failure(f"signup: {response.status_code} {(response.text or '')[:200]}")
            raise SignupFailed(f"signup answered {response.status_code}")
        answer = response.json()
    account = Account(answer["user"]["id"], username, "", "", 0.0)
    account.take(answer)
    return account


def refresh(client: FastHttpSession, account: Account) -> bool:
    """Rotate the refresh token (the old one is spent) and keep the new pair."""
    with client.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token},
                     name="/v1/auth/refresh", catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"refresh: {response.status_code} {(response.text or '')[:200]}")
            return False
        account.take(response.json())
    return True


def fresh(client: FastHttpSession, account: Account) -> dict[str, str]:
    """The Authorization header, refreshed first when the access token is about to expire."""
    if time.monotonic() > account.expires_at - REFRESH_MARGIN:
        refresh(client, account)
    return account.header
