"""Base classes that fix the conventions every wire Struct shares."""

from __future__ import annotations

import msgspec


class Inbound(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A shape a client sends us. Unknown fields are refused so typos surface as 422s."""


class Outbound(msgspec.Struct, frozen=True, kw_only=True):
    """A shape we send. New fields may be added (with defaults); none are renamed or removed."""
