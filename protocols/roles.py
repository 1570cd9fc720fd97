"""Account roles. Moderators and admins may act on others' content; admins may grant roles."""

from __future__ import annotations

from typing import Literal

Role = Literal["user", "moderator", "admin"]
ROLES: tuple[Role, ...] = ("user", "moderator", "admin")
