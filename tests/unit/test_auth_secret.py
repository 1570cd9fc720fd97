"""The JWT secret: taken from JWT_SECRET, or generated once into DATA_DIR and reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from server.auth.secret import resolve_jwt_secret
from server.config import ConfigError, Settings


def test_explicit_secret_wins_and_must_be_long(tmp_path: Path) -> None:
    secret = "k" * 32
    assert resolve_jwt_secret(Settings(jwt_secret=secret, data_dir=str(tmp_path))) == secret
    assert not (tmp_path / "jwt_secret").exists()
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        resolve_jwt_secret(Settings(jwt_secret="short", data_dir=str(tmp_path)))


def test_generated_secret_is_private_and_survives_restarts(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "var"))
    first = resolve_jwt_secret(settings)
    path = tmp_path / "var" / "jwt_secret"
    assert len(first) >= 43 and path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_jwt_secret(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["jwt_secret"]  # no temporary left


def test_a_truncated_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("tiny\n")
    with pytest.raises(ConfigError, match="delete it"):
        resolve_jwt_secret(Settings(data_dir=str(tmp_path)))
