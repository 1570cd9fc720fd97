"""Shared builders for the publishing unit tests."""

from __future__ import annotations

from actors.clock import LoopClock
from protocols.publishing import PublishRequest
from protocols.publishing_connections import ConnectionCreate
from server.auth.principal import Principal
from server.publishing.crypto import SecretBox, new_key, parse_keys
from server.publishing.service import ConnectionService
from tests.unit.publishing.fakes import MemoryConnectionStore

ANN = Principal(user_id="0190a0b0-0000-7000-8000-00000000000a", role="user", token_id="t",
                expires_at=0)
BOB = Principal(user_id="0190a0b0-0000-7000-8000-00000000000b", role="user", token_id="t",
                expires_at=0)


def service(store: MemoryConnectionStore | None = None) -> ConnectionService:
    return ConnectionService(store or MemoryConnectionStore(), SecretBox(parse_keys(new_key())),
                             LoopClock(), allow_http_localhost=True)


def request(connection_id: str | None, *, text: str = "hello", media_ids: list[str] | None = None,
            attempt: int = 1) -> PublishRequest:
    return PublishRequest(scheduled_post_id="0190a0b0-0000-7000-8000-0000000000f1",
                          target_index=1, author_id=ANN.user_id, text=text,
                          media_ids=media_ids or [], connection_id=connection_id,
                          idempotency_key="0190a0b0-0000-7000-8000-0000000000f1:1",
                          attempt=attempt)


def webhook(url: str) -> ConnectionCreate:
    return ConnectionCreate(kind="webhook", url=url)


def x_account(token: str) -> ConnectionCreate:
    return ConnectionCreate(kind="x", access_token=token, username="ann")
