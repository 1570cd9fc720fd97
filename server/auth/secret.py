"""The JWT signing secret: JWT_SECRET, or one generated once and kept under DATA_DIR.

The generated secret survives restarts (tokens stay valid) and is readable only by its owner.
Every node of a cluster must share one secret, so clusters set JWT_SECRET explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from server.config import ConfigError, Settings

log = logging.getLogger("hubbub.auth")
SECRET_FILE = "jwt_secret"
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


def resolve_jwt_secret(settings: Settings) -> str:
    """Blocking (reads or writes a file): call it from a thread or at startup."""
    if settings.jwt_secret is not None:
        if len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return settings.jwt_secret
    path = Path(settings.data_dir) / SECRET_FILE
    existing = _read(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_once(path, secrets.token_urlsafe(32))
    log.info("generated a JWT secret", extra={"path": str(path)})
    secret = _read(path)
    assert secret is not None
    return secret


def _read(path: Path) -> str | None:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path} holds a JWT secret shorter than {MIN_SECRET_BYTES} bytes; "
                          "delete it to have a new one generated")
    return secret


def write_private_once(path: Path, secret: str) -> None:
    """Write the secret to a private temporary file, then link it into place: the link fails
    if another process got there first, so two processes starting on one DATA_DIR agree."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
