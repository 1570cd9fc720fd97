"""Transport-level failures render as RFC 9457 problems, never as 500s or HTML."""

from __future__ import annotations

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
