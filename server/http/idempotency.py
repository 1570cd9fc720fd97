"""`Idempotency-Key` for creating POSTs: a retry with the same key returns the first result and
creates nothing new.

    idem = Idempotency.from_request(request, user_id=principal.user_id, scope="posts.create",
                                    fingerprint=fingerprint(msgspec.json.encode(body)))
    if (stored := await idem.lookup()) is not None:  # optional fast path before costly work
        return stored.response()
    result = await idem.run(201, lambda conn: service.create(conn, ...))
    return result.response()

`run` opens a transaction, claims the key, awaits `write(conn)` (which must make ALL its
writes on `conn`), stores what it returned (as msgspec.to_builtins) with the status, and
commits: the change and its stored response commit together or not at all. Without the header
`run` simply runs `write` in a transaction.

Rules:
- A key is 1-255 printable ASCII characters, scoped per user and per `scope` (a route name);
  anything else is 400 `invalid_idempotency_key`.
- The same key with a different fingerprint (another body) is 422 `idempotency_key_reused`.
  Fingerprint what the request means, not its raw bytes when those vary between retries
  (a multipart boundary does): e.g. `fingerprint(text, *file_bytes)`.
- A duplicate that arrives while the first is still running waits for it (up to `wait`
  seconds) and gets its result; past the wait it is 409 `idempotency_in_progress` (retry).
- Only successes are stored: when `write` raises, nothing is kept and a retry runs afresh.
- Responses are replayed for `ttl` seconds (24 h) with `Idempotent-Replayed: true`, verbatim.
  A body holding something that expires (presigned media URLs) can be re-read by its id and
  passed to `response(body=...)`, as POST /v1/media does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from server.http.problems import BadRequest, Conflict, ValidationFailed
from server.keys import DB_POOL
from storage.postgres.idempotency import KeyInProgress, PostgresIdempotencyStore, StoredResponse

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_TTL = 24 * 3600.0
DEFAULT_WAIT = 10.0
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces
_encoder = msgspec.json.Encoder()

Write = Callable[[asyncpg.Connection], Awaitable[Any]]


def fingerprint(*parts: bytes | str) -> bytes:
    """A digest of the request's meaning; each part is length-prefixed so parts cannot blur."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


def idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key, None when absent; 400 when malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise BadRequest(f"{HEADER} must be 1-255 printable ASCII characters without spaces",
                         code="invalid_idempotency_key")
    return key


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    status: int
    body: Any  # JSON-ready builtins
    replayed: bool

    def response(self, body: Any = msgspec.UNSET) -> web.Response:
        """The JSON response; `body` replaces the stored one (e.g. re-read with fresh URLs)."""
        payload = self.body if body is msgspec.UNSET else body
        headers = {REPLAYED_HEADER: "true"} if self.replayed else {}
        return web.Response(status=self.status, body=_encoder.encode(payload),
                            content_type="application/json", headers=headers)


class Idempotency:
    def __init__(self, pool: asyncpg.Pool, *, user_id: str, scope: str, key: str | None,
                 fingerprint: bytes, ttl: float = DEFAULT_TTL,
                 wait: float = DEFAULT_WAIT) -> None:
        self._pool = pool
        self._store = PostgresIdempotencyStore(pool)
        self._user_id = user_id
        self._scope = scope
        self.key = key
        self._fingerprint = fingerprint
        self._ttl = ttl
        self._wait = wait

    @classmethod
    def from_request(cls, request: web.Request, *, user_id: str, scope: str,
                     fingerprint: bytes, **options: float) -> Idempotency:
        return cls(request.app[DB_POOL], user_id=user_id, scope=scope,
                   key=idempotency_key(request), fingerprint=fingerprint, **options)

    async def lookup(self) -> IdempotentResult | None:
        """The stored result for this key, if a request with it already committed. Cheap
        (one read); `run` checks again under the claim, so this is only a fast path."""
        if self.key is None:
            return None
        stored = await self._store.find(self._user_id, self._scope, self.key, ttl=self._ttl)
        return self._replay(stored) if stored is not None else None

    async def run(self, status: int, write: Write) -> IdempotentResult:
        """Run `write(conn)` in a transaction that also stores its result under the key; or
        return the result stored by an earlier (or concurrent) request with the same key."""
        async with self._pool.acquire() as conn, conn.transaction():
            if self.key is not None:
                try:
                    stored = await self._store.claim(
                        conn, self._user_id, self._scope, self.key, self._fingerprint,
                        ttl=self._ttl, wait=self._wait)
                except KeyInProgress:
                    raise Conflict("A request with this Idempotency-Key is still in progress; "
                                   "retry shortly", code="idempotency_in_progress") from None
                if stored is not None:
                    return self._replay(stored)
            body = msgspec.to_builtins(await write(conn))
            if self.key is not None:
                await self._store.finish(conn, self._user_id, self._scope, self.key, status,
                                         body)
        return IdempotentResult(status=status, body=body, replayed=False)

    def _replay(self, stored: StoredResponse) -> IdempotentResult:
        if stored.request_hash != self._fingerprint:
            raise ValidationFailed(
                "This Idempotency-Key was used with a different request; use a new key",
                code="idempotency_key_reused")
        return IdempotentResult(status=stored.status, body=stored.response, replayed=True)
