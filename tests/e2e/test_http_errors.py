"""Transport-level failures render as RFC 9457 problems, never as 500s or HTML."""

from __future__ import annotations

import uuid

import aiohttp

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


async def _problem(response: aiohttp.ClientResponse, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert PROBLEM_KEYS <= body.keys() and body["status"] == status
    return body


async def test_oversized_body_is_413(http: aiohttp.ClientSession) -> None:
    big = b'{"username": "' + b"a" * (70 * 1024) + b'"}'
    headers = {"Content-Type": "application/json"}
    async with http.post("/v1/auth/signup", data=big, headers=headers) as response:
        body = await _problem(response, 413)
        assert body["code"] == "too_large"


async def test_oversized_chunked_body_is_413(http: aiohttp.ClientSession) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"username": "'
        for _ in range(80):
            yield b"a" * 1024
        yield b'"}'

    headers = {"Content-Type": "application/json"}
    async with http.post("/v1/auth/signup", data=chunks(), headers=headers) as response:
        await _problem(response, 413)


async def test_wrong_method_is_405_with_allow(http: aiohttp.ClientSession) -> None:
    async with http.delete("/health") as response:
        await _problem(response, 405)
        assert "GET" in response.headers["Allow"]


async def test_empty_body_is_400(http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post("/v1/auth/login", data=b"", headers=headers) as response:
        body = await _problem(response, 400)
        assert body["code"] == "malformed"


async def test_every_response_is_nosniff_and_names_no_server_version(
        http: aiohttp.ClientSession) -> None:
    """Issue 9 item 17: successes, problems, unmatched routes, static pages and Socket.IO
    polling alike."""
    for method, path in (("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/v1/auth/me"), ("GET", "/no/such/route"),
                         ("DELETE", "/health"), ("GET", "/socket.io/?EIO=4&transport=polling")):
        async with http.request(method, path) as response:
            assert response.headers.get("X-Content-Type-Options") == "nosniff", (method, path)
            assert "Server" not in response.headers, (path, response.headers.get("Server"))


async def test_responses_carrying_tokens_are_never_cached(http: aiohttp.ClientSession) -> None:
    name = f"cache_{uuid.uuid4().hex[:10]}"
    account = {"username": name, "email": f"{name}@example.test", "password": "p" * 12}
    async with http.post("/v1/auth/signup", json=account) as response:
        assert response.status == 201 and response.headers["Cache-Control"] == "no-store"
        refresh = (await response.json())["refresh_token"]
    async with http.post("/v1/auth/login", json={"identifier": name,
                                                 "password": "p" * 12}) as response:
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    async with http.post("/v1/auth/refresh", json={"refresh_token": refresh}) as response:
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    async with http.get("/health") as response:
        assert "Cache-Control" not in response.headers


async def test_a_body_that_is_not_utf8_is_400(http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json"}
    for raw in (b'{"identifier": "\xed\xa0\x80", "password": "x"}',  # an encoded surrogate
                b'{"identifier": "\xff", "password": "x"}',
                b'{"identifier": "\\ud800", "password": "x"}'):  # an unpaired escape
        async with http.post("/v1/auth/login", data=raw, headers=headers) as response:
            body = await _problem(response, 400)
            assert body["code"] == "malformed"
