"""Credentials at rest: AES-256-GCM (the `cryptography` package) under
PUBLISHING_ENCRYPTION_KEY.

A sealed value is `0x01 || nonce (12 random bytes) || ciphertext || tag (16 bytes)`. The
associated data binds it to its connection (`kind` and `id`): a sealed value copied onto
another row, or another kind of row, fails to open instead of lending its token.

Key rotation: PUBLISHING_ENCRYPTION_KEY is a comma-separated list of keys, each the URL-safe
base64 of 32 bytes. The first seals; all of them open. To rotate, put a new key first, keep
the old ones until every connection has been re-created (or re-sealed), then drop them.

Unset (development, embedded mode): one key is generated once and kept in
DATA_DIR/publishing_key, readable only by its owner, like the JWT secret (server/auth/secret.py).
Every node of a cluster must share the keys, so clusters set the variable explicitly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.auth.secret import write_private_once
from server.config import ConfigError, Settings

log = logging.getLogger("hubbub.publishing")
KEY_FILE = "publishing_key"
KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12  # random 96-bit nonces: safe far beyond the number of connections we keep


class SealError(Exception):
    """A sealed value does not open: a wrong or missing key, or a tampered/moved value."""


class SecretBox:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._ciphers = [AESGCM(key) for key in keys]

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._ciphers[0].encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise SealError("not a sealed value of a known version")
        nonce, body = sealed[1:1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES:]
        for cipher in self._ciphers:
            with contextlib.suppress(InvalidTag):
                return cipher.decrypt(nonce, body, context.encode())
        raise SealError("no configured PUBLISHING_ENCRYPTION_KEY opens this value")


def connection_context(kind: str, connection_id: str) -> str:
    """The associated data of a connection's credentials."""
    return f"hubbub.publishing.v1:{kind}:{connection_id}"


def parse_keys(raw: str) -> list[bytes]:
    """PUBLISHING_ENCRYPTION_KEY's keys; ConfigError naming the variable when one is bad."""
    keys = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError("PUBLISHING_ENCRYPTION_KEY: each key must be the URL-safe base64 "
                              f"of {KEY_BYTES} bytes (python -c 'import secrets; "
                              "print(secrets.token_urlsafe(32))')")
        keys.append(key)
    if not keys:
        raise ConfigError("PUBLISHING_ENCRYPTION_KEY holds no key")
    return keys


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def resolve_keys(settings: Settings) -> list[bytes]:
    """Blocking (may read or write a file): call it from a thread or at startup."""
    if settings.publishing_encryption_key is not None:
        return parse_keys(settings.publishing_encryption_key)
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private_once(path, new_key())  # two nodes on one DATA_DIR agree
        log.info("generated a publishing encryption key", extra={"path": str(path)})
    return parse_keys(path.read_text(encoding="utf-8").strip())
