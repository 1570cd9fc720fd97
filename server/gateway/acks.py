"""Ack payloads in the contract's shape: {ok: true, ...} or {ok: false, error: {code,
message}}."""

from __future__ import annotations

from typing import Any

from protocols.socket import AckError, AckOk, ErrorBody, to_wire

_OK: dict[str, Any] = to_wire(AckOk())


def ok(ack: AckOk | None = None) -> dict[str, Any]:
    return dict(_OK) if ack is None else to_wire(ack)


def error(code: str, message: str, *, retry_after: float | None = None) -> dict[str, Any]:
    body = ErrorBody(code=code, message=message[:300], retry_after=retry_after)
    return to_wire(AckError(error=body))
