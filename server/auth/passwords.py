"""Password hashing with argon2id, off the event loop.

argon2 is deliberately slow and memory-hungry (64 MiB per hash by default), so every hash and
verification runs in a worker thread, and a semaphore caps how many run at once so a login
flood cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger("hubbub.auth")


class Verified(msgspec.Struct, frozen=True):
    ok: bool
    new_hash: str | None = None  # set when the stored hash used outdated parameters


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None, *,
                 max_concurrent: int | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(max_concurrent or max(2, os.cpu_count() or 2))
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verified:
        """Check password against stored_hash. With no stored hash (unknown account) a dummy
        hash is verified anyway, so the answer takes as long as for a real account."""
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
            async with self._slots:
                await asyncio.to_thread(self._check, self._dummy_hash, password)
            return Verified(ok=False)
        async with self._slots:
            return await asyncio.to_thread(self._check, stored_hash, password)

    def _check(self, stored_hash: str, password: str) -> Verified:
        try:
            self._hasher.verify(stored_hash, password)
        except VerificationError:  # includes VerifyMismatchError, the usual wrong password
            return Verified(ok=False)
        except InvalidHashError:
            log.warning("a stored password hash is not a valid argon2 hash")
            return Verified(ok=False)
        if self._hasher.check_needs_rehash(stored_hash):
            return Verified(ok=True, new_hash=self._hasher.hash(password))
        return Verified(ok=True)
