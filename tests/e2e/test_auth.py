"""Accounts and sessions over HTTP against the real server."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import aiohttp
import jwt

from tests.e2e.conftest import JWT_SECRET
from tests.support.polling import eventually
from tests.support.server import HubbubProcess

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
ME_KEYS = {"id", "username", "email", "display_name", "bio", "avatar_media_id", "role",
           "follower_count", "following_count", "created_at", "updated_at"}
PASSWORD = "correct horse battery"


def _account() -> dict[str, str]:
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD}


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def _problem(response: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert PROBLEM_KEYS <= body.keys() and body["status"] == status
    assert body["code"] == code, body
    return body


async def _signup(http: aiohttp.ClientSession, account: dict[str, str]) -> dict[str, Any]:
    async with http.post("/v1/auth/signup", json=account) as response:
        return await _json(response, 201)


async def _login(http: aiohttp.ClientSession, identifier: str,
                 password: str = PASSWORD) -> aiohttp.ClientResponse:
    return await http.post("/v1/auth/login",
                           json={"identifier": identifier, "password": password})


async def _refresh(http: aiohttp.ClientSession, token: str) -> aiohttp.ClientResponse:
    return await http.post("/v1/auth/refresh", json={"refresh_token": token})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_signup_returns_the_account_and_a_session(http: aiohttp.ClientSession) -> None:
    account = {**_account(), "display_name": "E2E Person"}
    body = await _signup(http, account)
    assert set(body) == {"user", "access_token", "refresh_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    user = body["user"]
    assert set(user) == ME_KEYS
    assert (user["username"], user["email"], user["display_name"], user["role"]) == (
        account["username"], account["email"], "E2E Person", "user")
    assert user["created_at"].endswith("Z")
    async with http.get("/v1/auth/me", headers=_bearer(body["access_token"])) as response:
        assert await _json(response, 200) == user


async def test_duplicates_conflict_regardless_of_case(http: aiohttp.ClientSession) -> None:
    account = _account()
    await _signup(http, account)
    same_name = {**_account(), "username": account["username"].upper()}
    async with http.post("/v1/auth/signup", json=same_name) as response:
        await _problem(response, 409, "username_taken")
    same_email = {**_account(), "email": account["email"].upper()}
    async with http.post("/v1/auth/signup", json=same_email) as response:
        await _problem(response, 409, "email_taken")


async def test_bad_bodies_are_problems(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/auth/signup", json={**_account(), "username": "a b"}) as response:
        body = await _problem(response, 422, "invalid")
        assert [e["field"] for e in body["errors"]] == ["username"]
    async with http.post("/v1/auth/signup", json={**_account(), "password": "short"}) as response:
        body = await _problem(response, 422, "invalid")
        assert body["errors"][0]["field"] == "password"
    headers = {"Content-Type": "application/json"}
    async with http.post("/v1/auth/signup", data=b'{"username": ', headers=headers) as response:
        await _problem(response, 400, "malformed")
    async with http.post("/v1/auth/login", data="identifier=a&password=b",
                         headers={"Content-Type": "application/x-www-form-urlencoded"},
                         ) as response:
        await _problem(response, 415, "unsupported_media_type")


async def test_login_by_username_or_email(http: aiohttp.ClientSession) -> None:
    account = _account()
    user = (await _signup(http, account))["user"]
    async with await _login(http, account["username"].upper()) as response:
        assert (await _json(response, 200))["user"]["id"] == user["id"]
    async with await _login(http, account["email"]) as response:
        body = await _json(response, 200)
        assert body["user"]["id"] == user["id"] and body["refresh_token"]
    async with await _login(http, account["username"], "wrong password") as response:
        wrong = await _problem(response, 401, "invalid_credentials")
    async with await _login(http, f"nobody_{uuid.uuid4().hex}") as response:
        unknown = await _problem(response, 401, "invalid_credentials")
    assert wrong["detail"] == unknown["detail"]


async def test_me_needs_a_valid_token(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/auth/me") as response:
        await _problem(response, 401, "missing_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with http.get("/v1/auth/me", headers=_bearer("not.a.jwt")) as response:
        await _problem(response, 401, "invalid_token")


async def test_expired_access_token_is_refused(http: aiohttp.ClientSession) -> None:
    user = (await _signup(http, _account()))["user"]
    now = int(time.time())
    claims = {"iss": "hubbub", "aud": "hubbub-api", "sub": user["id"], "role": "user",
              "iat": now - 1000, "nbf": now - 1000, "exp": now - 100, "jti": "expired-1"}
    expired = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    async with http.get("/v1/auth/me", headers=_bearer(expired)) as response:
        await _problem(response, 401, "token_expired")
    fresh = jwt.encode({**claims, "iat": now - 800, "nbf": now - 800, "exp": now + 100,
                        "jti": "fresh-1"}, JWT_SECRET, algorithm="HS256")
    async with http.get("/v1/auth/me", headers=_bearer(fresh)) as response:
        assert (await _json(response, 200))["id"] == user["id"]


async def test_a_token_claiming_too_long_a_lifetime_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    user = (await _signup(http, _account()))["user"]
    now = int(time.time())
    claims = {"iss": "hubbub", "aud": "hubbub-api", "sub": user["id"], "role": "user",
              "iat": now, "nbf": now, "exp": now + 365 * 86400, "jti": "a-year"}
    year = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    async with http.get("/v1/auth/me", headers=_bearer(year)) as response:
        await _problem(response, 401, "invalid_token")
    # Minted under a longer TTL (an hour) before it was cut to 15 minutes: still unexpired.
    before_cut = jwt.encode({**claims, "iat": now - 600, "nbf": now - 600, "exp": now + 3000},
                            JWT_SECRET, algorithm="HS256")
    async with http.get("/v1/auth/me", headers=_bearer(before_cut)) as response:
        await _problem(response, 401, "invalid_token")


async def test_refresh_rotates_and_a_replay_revokes_the_session(
    http: aiohttp.ClientSession,
) -> None:
    first = await _signup(http, _account())
    async with await _refresh(http, first["refresh_token"]) as response:
        second = await _json(response, 200)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["user"]["id"] == first["user"]["id"]
    async with http.get("/v1/auth/me", headers=_bearer(second["access_token"])) as response:
        assert response.status == 200

    async with await _refresh(http, first["refresh_token"]) as response:
        await _problem(response, 401, "refresh_token_reused")
    async with await _refresh(http, second["refresh_token"]) as response:
        await _problem(response, 401, "invalid_refresh_token")
    async with await _refresh(http, "never-issued") as response:
        await _problem(response, 401, "invalid_refresh_token")


async def test_logout_ends_the_session(http: aiohttp.ClientSession) -> None:
    session = await _signup(http, _account())
    for _ in range(2):  # idempotent
        async with http.post("/v1/auth/logout",
                             json={"refresh_token": session["refresh_token"]}) as response:
            assert response.status == 204
    async with await _refresh(http, session["refresh_token"]) as response:
        await _problem(response, 401, "invalid_refresh_token")
    async with http.post("/v1/auth/logout", json={"refresh_token": "unknown"}) as response:
        assert response.status == 204


async def test_logout_all_stops_every_token_at_once(http: aiohttp.ClientSession) -> None:
    account = _account()
    phone = await _signup(http, account)
    async with await _login(http, account["username"]) as response:
        laptop = await _json(response, 200)
    other = await _signup(http, _account())
    for session in (phone, laptop):
        async with http.get("/v1/auth/me", headers=_bearer(session["access_token"])) as resp:
            assert resp.status == 200

    async with http.post("/v1/auth/logout_all",
                         headers=_bearer(laptop["access_token"])) as response:
        assert response.status == 204 and await response.read() == b""
    for session in (phone, laptop):
        async with http.get("/v1/auth/me", headers=_bearer(session["access_token"])) as resp:
            await _problem(resp, 401, "token_revoked")
        async with await _refresh(http, session["refresh_token"]) as resp:
            await _problem(resp, 401, "invalid_refresh_token")
    async with http.post("/v1/auth/logout_all",
                         headers=_bearer(phone["access_token"])) as response:
        await _problem(response, 401, "token_revoked")
    # Someone else is not affected; logging in again works at once (the same second too).
    async with http.get("/v1/auth/me", headers=_bearer(other["access_token"])) as response:
        assert response.status == 200
    async with await _login(http, account["username"]) as response:
        again = await _json(response, 200)
    async with http.get("/v1/auth/me", headers=_bearer(again["access_token"])) as response:
        assert (await _json(response, 200))["id"] == phone["user"]["id"]
    async with http.post("/v1/auth/logout_all") as response:
        await _problem(response, 401, "missing_token")


async def _mailed_code(hubbub: HubbubProcess, email: str, seen: int) -> str:
    """The code in the newest message logged for email, once more than `seen` exist."""
    def mails() -> list[dict[str, Any]]:
        return [e for e in hubbub.logs()
                if e.get("logger") == "hubbub.mail" and e.get("mail_to") == email]

    async def arrived() -> bool:
        return len(mails()) > seen

    await eventually(arrived, 10, f"a reset code for {email} in the log")
    match = re.search(r"\b(\d{6})\b", mails()[-1]["mail_body"])
    assert match, mails()[-1]
    return match.group(1)


async def test_password_reset_by_mailed_code(
    http: aiohttp.ClientSession, hubbub: HubbubProcess
) -> None:
    account = _account()
    session = await _signup(http, account)
    async with http.post("/v1/auth/password/forgot", json={"email": account["email"]}) as resp:
        assert resp.status == 202
    code = await _mailed_code(hubbub, account["email"], 0)

    wrong = {"email": account["email"], "code": f"{(int(code) + 1) % 1_000_000:06d}",
             "new_password": "a brand new password"}
    async with http.post("/v1/auth/password/reset", json=wrong) as response:
        body = await _problem(response, 422, "invalid_reset_code")
        assert [e["field"] for e in body["errors"]] == ["code"]
    async with http.post("/v1/auth/password/reset", json={**wrong, "code": code}) as response:
        assert response.status == 204, await response.text()

    # The access token issued before the reset stops working at once.
    async with http.get("/v1/auth/me", headers=_bearer(session["access_token"])) as response:
        await _problem(response, 401, "token_revoked")
    async with await _login(http, account["username"], "a brand new password") as response:
        fresh = await _json(response, 200)
    async with http.get("/v1/auth/me", headers=_bearer(fresh["access_token"])) as response:
        assert response.status == 200
    async with await _login(http, account["username"]) as response:
        await _problem(response, 401, "invalid_credentials")
    # Every device was signed out; the code was single-use.
    async with await _refresh(http, session["refresh_token"]) as response:
        await _problem(response, 401, "invalid_refresh_token")
    async with http.post("/v1/auth/password/reset", json={**wrong, "code": code}) as response:
        await _problem(response, 422, "invalid_reset_code")


async def test_forgot_says_nothing_about_unknown_addresses(
    http: aiohttp.ClientSession, hubbub: HubbubProcess
) -> None:
    email = f"ghost_{uuid.uuid4().hex[:12]}@example.com"
    async with http.post("/v1/auth/password/forgot", json={"email": email}) as response:
        assert response.status == 202 and await response.read() == b""
    assert not [e for e in hubbub.logs() if e.get("mail_to") == email]
