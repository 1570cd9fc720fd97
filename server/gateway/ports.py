"""The gateway's own ports (actor ports are in actors/ports.py)."""

from __future__ import annotations

from typing import Protocol


class PresenceVisibility(Protocol):
    async def visible_to(self, viewer_id: str, user_ids: list[str]) -> set[str]:
        """The subset of user_ids (canonical lowercase UUIDs) that exist and have no block
        with viewer_id in either direction: whose presence the viewer may see. The viewer
        always sees themself. One query whatever the number of ids."""
        ...
