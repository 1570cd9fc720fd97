"""Storage's one base exception; adapters translate driver errors into these at the boundary."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed for a reason the caller cannot fix by changing input."""


class DuplicateError(StorageError):
    """A uniqueness rule refused the write; `constraint` names it (e.g. users_username_key)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(f"duplicate value violates {constraint}")
        self.constraint = constraint
