"""A local X API v2 server for tests (the real service is not reachable from them).

It speaks the documented endpoints the `x` publisher uses, with X's status codes, problem
bodies and rate-limit headers:

    POST /2/media/upload   multipart (media, media_category, media_type)
        200 {"data": {"id", "media_key", "size", "expires_after_secs", "image": {...}}}
    POST /2/tweets         {"text", "media"?: {"media_ids": [...]}}
        201 {"data": {"id", "text"}}

- `Authorization: Bearer <token>` must name a token given to `grant()`; anything else is 401.
  `revoke()` makes a granted token answer 401.
- Each token has a window of `limit` create-post calls; every answer carries
  `x-rate-limit-limit`, `x-rate-limit-remaining` and `x-rate-limit-reset` (Unix seconds).
  With nothing left, POST /2/tweets answers 429 until the reset, then the window refills.
  `exhaust(token, reset_in=s)` spends a window now.
- Posting a text this token already posted is 403 with X's duplicate-content detail.
- A media id in a post must come from an upload with the same token (else 400).

Every request is recorded in `requests` (method, path, token, JSON body or form fields, time).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."


@dataclass
class Recorded:
    method: str
    path: str
    token: str | None
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    status: int = 0


@dataclass
class _Window:
    limit: int
    remaining: int
    reset_at: int


class LocalXApi:
    def __init__(self, *, limit: int = 100, window_seconds: int = 900) -> None:
        self.requests: list[Recorded] = []
        self.posts: dict[str, dict[str, Any]] = {}  # id -> {text, media_ids, token}
        self._limit = limit
        self._window_seconds = window_seconds
        self._tokens: dict[str, bool] = {}  # token -> still valid
        self._windows: dict[str, _Window] = {}
        self._texts: dict[str, set[str]] = {}
        self._media: dict[str, str] = {}  # media id -> token that uploaded it
        self._ids = itertools.count(1_880_000_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- control ------------------------------------------------------------------------

    def grant(self, token: str) -> None:
        self._tokens[token] = True

    def revoke(self, token: str) -> None:
        self._tokens[token] = False

    def exhaust(self, token: str, *, reset_in: float) -> int:
        """Spend the token's window: create-post calls answer 429 until the returned reset
        (Unix seconds, rounded up as X's are whole seconds)."""
        reset_at = math.ceil(time.time() + reset_in)
        self._windows[token] = _Window(self._limit, 0, reset_at)
        return reset_at

    def of(self, path: str, token: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path == path and (token is None or r.token == token)]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> LocalXApi:
        app = web.Application()
        app.router.add_post("/2/tweets", self._create_post)
        app.router.add_post("/2/media/upload", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- endpoints ----------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        token = _bearer(request)
        form: dict[str, Any] = {}
        async for part in await request.multipart():
            data = bytes(await part.read())
            form[part.name or ""] = data if part.name == "media" else data.decode()
        record = self._record(request, token, form=form)
        if not self._tokens.get(token or ""):
            return self._answer(record, 401, _problem(401, "Unauthorized", "Unauthorized"))
        media = form.get("media")
        if not isinstance(media, bytes) or not media:
            return self._answer(record, 400, _problem(400, "Invalid Request",
                                                      "One or more parameters is invalid."))
        media_id = str(next(self._ids))
        self._media[media_id] = token or ""
        return self._answer(record, 200, {"data": {
            "id": media_id, "media_key": f"3_{media_id}", "size": len(media),
            "expires_after_secs": 86400,
            "image": {"image_type": form.get("media_type", "image/jpeg")}}})

    async def _create_post(self, request: web.Request) -> web.Response:
        token = _bearer(request)
        try:
            body = await request.json()
        except ValueError:
            body = None
        record = self._record(request, token, body=body)
        if not self._tokens.get(token or ""):
            return self._answer(record, 401, _problem(401, "Unauthorized", "Unauthorized"))
        assert token is not None
        window = self._window(token)
        if window.remaining <= 0:
            return self._answer(record, 429, _problem(429, "Too Many Requests",
                                                      "Too Many Requests"), window)
        window.remaining -= 1
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return self._answer(record, 400, _problem(400, "Invalid Request",
                                                      "One or more parameters is invalid."),
                                window)
        media_ids = (body.get("media") or {}).get("media_ids") or []
        if any(self._media.get(m) != token for m in media_ids):
            return self._answer(record, 400, _problem(400, "Invalid Request",
                                                      "Your media IDs are invalid."), window)
        texts = self._texts.setdefault(token, set())
        if body["text"] in texts:
            return self._answer(record, 403, _problem(403, "Forbidden", DUPLICATE_DETAIL),
                                window)
        texts.add(body["text"])
        post_id = str(next(self._ids))
        self.posts[post_id] = {"text": body["text"], "media_ids": media_ids, "token": token}
        return self._answer(record, 201, {"data": {"id": post_id, "text": body["text"]}},
                            window)

    # -- helpers ------------------------------------------------------------------------

    def _window(self, token: str) -> _Window:
        now = time.time()
        window = self._windows.get(token)
        if window is None or window.reset_at <= now:
            window = _Window(self._limit, self._limit, math.ceil(now + self._window_seconds))
            self._windows[token] = window
        return window

    def _record(self, request: web.Request, token: str | None, *, body: Any = None,
                form: dict[str, Any] | None = None) -> Recorded:
        record = Recorded(request.method, request.path, token, json=body, form=form or {},
                          at=time.time())
        self.requests.append(record)
        return record

    def _answer(self, record: Recorded, status: int, body: dict[str, Any],
                window: _Window | None = None) -> web.Response:
        record.status = status
        headers = {}
        if window is not None:
            headers = {"x-rate-limit-limit": str(window.limit),
                       "x-rate-limit-remaining": str(max(0, window.remaining)),
                       "x-rate-limit-reset": str(window.reset_at)}
        content_type = "application/problem+json" if status >= 400 else "application/json"
        return web.Response(status=status, body=json.dumps(body), headers=headers,
                            content_type=content_type)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Bearer" and token else None


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}
