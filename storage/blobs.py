"""What every blob store adapter shares: the key rule and the errors they raise."""

from __future__ import annotations

import re

from storage.errors import StorageError

# Slash-separated segments of letters, digits, `_`, `-` and `.`, each starting with a letter or
# digit: no empty, `.` or `..` segment, no leading slash, nothing a filesystem or a URL path
# would interpret. Media keys look like `0190c2f0-.../original.jpg`.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
KEY_PATTERN = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,7}}")  # use fullmatch
MAX_KEY_LENGTH = 512


class InvalidKey(StorageError, ValueError):
    """The key does not match KEY_PATTERN (a caller bug, or a crafted URL)."""


class NotSupported(StorageError):
    """The adapter cannot do this (e.g. presigned uploads); the caller offers another way."""


def check_key(key: str) -> str:
    """Return key unchanged when it is a valid blob key; raise InvalidKey otherwise."""
    if len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.fullmatch(key):
        raise InvalidKey(f"invalid blob key: {key[:80]!r}")
    return key
