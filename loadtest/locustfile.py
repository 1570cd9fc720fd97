"""Locust scenarios for Hubbub's REST API.

    .venv/bin/locust -f loadtest/locustfile.py --host http://127.0.0.1:8080

or `make bench`, which starts a throwaway server and runs these headless (loadtest/bench.py).
Requests are named by route (`name=`), so the statistics group `/v1/users/{id}` as one row.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

PASSWORD = "load-test password 1"
# Pause between one user's requests, "min,max" seconds; "0,0" finds the server's throughput
# ceiling rather than its latency at a steady load.
WAIT_MIN, WAIT_MAX = (float(x) for x in os.environ.get("LOADTEST_WAIT", "0.1,0.5").split(","))

# Ids of every user signed up by this locust process, so simulated users can look each other
# up and follow each other. A module-level list is fine in a load script: locust runs users as
# greenlets in one thread, and appends are atomic.
KNOWN_USERS: list[str] = []


class RestUser(FastHttpUser):
    """Signs up once, then reads its account, rotates its refresh token, looks at profiles and
    follower lists, and follows and unfollows the other simulated users."""

    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        self.following: set[str] = set()
        name = f"lt_{uuid.uuid4().hex[:12]}"
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD,
                "display_name": f"Load {name[-4:]}"}
        with self.client.post("/v1/auth/signup", json=body, name="/v1/auth/signup",
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"signup: {response.status_code} {response.text[:200]}")
        if response.status_code != 201:
            raise StopUser()  # nothing else works without an account
        created = response.json()
        self._take_tokens(created)
        self.user_id: str = created["user"]["id"]
        KNOWN_USERS.append(self.user_id)

    def _take_tokens(self, auth: dict[str, Any]) -> None:
        self.access_token = auth["access_token"]
        self.refresh_token = auth["refresh_token"]

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def _someone_else(self) -> str | None:
        if len(KNOWN_USERS) < 2:
            return None
        while True:
            other = random.choice(KNOWN_USERS)
            if other != self.user_id:
                return other

    @task(3)
    def me(self) -> None:
        self.client.get("/v1/auth/me", headers=self._auth, name="/v1/auth/me")

    @task(1)
    def refresh(self) -> None:
        # Rotation: the old refresh token is spent; keep the new pair.
        with self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token},
                              name="/v1/auth/refresh", catch_response=True) as response:
            if response.status_code == 200:
                self._take_tokens(response.json())
            else:
                response.failure(f"refresh: {response.status_code} {response.text[:200]}")

    @task(5)
    def profile(self) -> None:
        other = self._someone_else() or self.user_id
        self.client.get(f"/v1/users/{other}", headers=self._auth, name="/v1/users/{id}")

    @task(2)
    def follow(self) -> None:
        other = self._someone_else()
        if other is None or other in self.following:
            return
        with self.client.post(f"/v1/users/{other}/follow", headers=self._auth,
                              name="/v1/users/{id}/follow",
                              catch_response=True) as response:
            if response.ok:
                self.following.add(other)
            else:
                response.failure(f"follow: {response.status_code} {response.text[:200]}")

    @task(1)
    def unfollow(self) -> None:
        if not self.following:
            return
        other = random.choice(sorted(self.following))
        with self.client.delete(f"/v1/users/{other}/follow", headers=self._auth,
                                name="/v1/users/{id}/follow",
                                catch_response=True) as response:
            if response.ok:
                self.following.discard(other)
            else:
                response.failure(f"unfollow: {response.status_code} {response.text[:200]}")

    @task(3)
    def followers(self) -> None:
        other = self._someone_else() or self.user_id
        self.client.get(f"/v1/users/{other}/followers?limit=20", headers=self._auth,
                        name="/v1/users/{id}/followers")
