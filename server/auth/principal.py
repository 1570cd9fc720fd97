"""Who is calling: the verified claims of an access token."""

from __future__ import annotations

import msgspec

from protocols.roles import Role


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    role: Role
    token_id: str  # the access token's jti
    expires_at: int  # unix seconds
    issued_at: int = 0  # unix seconds: the token's iat, against the user's revocation watermark

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles
