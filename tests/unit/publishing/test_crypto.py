"""Credentials at rest: AES-GCM round trip, bound to their connection; the stored bytes hold
no plaintext; key rotation; the generated development key under DATA_DIR."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from server.publishing.crypto import (
    KEY_FILE,
    SealError,
    SecretBox,
    connection_context,
    new_key,
    parse_keys,
    resolve_keys,
)

TOKEN = b'{"access_token":"x-user-token-0123456789"}'


def box(*keys: str) -> SecretBox:
    return SecretBox(parse_keys(",".join(keys)))


def test_round_trip_and_no_plaintext_in_the_sealed_bytes() -> None:
    key = new_key()
    context = connection_context("x", "0190a0b0-0000-7000-8000-000000000001")
    sealed = box(key).seal(TOKEN, context=context)
    assert box(key).open(sealed, context=context) == TOKEN
    assert TOKEN not in sealed and b"x-user-token" not in sealed
    assert sealed != box(key).seal(TOKEN, context=context)  # a fresh nonce each time


def test_a_sealed_value_does_not_open_elsewhere() -> None:
    key = new_key()
    sealed = box(key).seal(TOKEN, context=connection_context("x", "a"))
    with pytest.raises(SealError):
        box(key).open(sealed, context=connection_context("x", "b"))  # moved to another row
    with pytest.raises(SealError):
        box(key).open(sealed, context=connection_context("webhook", "a"))
    with pytest.raises(SealError):
        box(new_key()).open(sealed, context=connection_context("x", "a"))  # another key
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        box(key).open(tampered, context=connection_context("x", "a"))


def test_rotation_new_key_first_old_keys_still_open() -> None:
    old, new = new_key(), new_key()
    context = connection_context("webhook", "a")
    sealed_old = box(old).seal(TOKEN, context=context)
    rotated = box(new, old)
    assert rotated.open(sealed_old, context=context) == TOKEN
    sealed_new = rotated.seal(TOKEN, context=context)
    assert box(new).open(sealed_new, context=context) == TOKEN
    with pytest.raises(SealError):
        box(old).open(sealed_new, context=context)


@pytest.mark.parametrize("raw", ["short", "", " , ", "!" * 43])
def test_bad_keys_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="PUBLISHING_ENCRYPTION_KEY"):
        parse_keys(raw)


def test_unset_key_is_generated_once_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path)})
    first = resolve_keys(settings)
    assert resolve_keys(settings) == first and len(first[0]) == 32
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600


def test_a_configured_key_wins(tmp_path: Path) -> None:
    key = new_key()
    settings = load_settings({"DATA_DIR": str(tmp_path), "PUBLISHING_ENCRYPTION_KEY": key})
    assert resolve_keys(settings) == parse_keys(key)
    assert not (tmp_path / KEY_FILE).exists()
