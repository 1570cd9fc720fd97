"""The connections store on real Postgres: what the service stores comes back; the row holds
the credentials only sealed (the plaintext appears nowhere in it); ownership on delete; a
malformed id matches nothing; removing a user removes their connections."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from actors.clock import LoopClock
from protocols.ids import new_id
from protocols.publishing_connections import ConnectionCreate
from server.auth.principal import Principal
from server.publishing.crypto import SecretBox, new_key, parse_keys
from server.publishing.service import ConnectionService
from storage.postgres.publishing_connections import PostgresConnectionStore

pytestmark = pytest.mark.integration


async def user(pool: asyncpg.Pool) -> Principal:
    user_id = new_id()
    name = "pub" + uuid.uuid4().hex[:10]
    await pool.execute("INSERT INTO users (id, username, email, password_hash) "
                       "VALUES ($1, $2, $3, 'x')", user_id, name, f"{name}@example.com")
    return Principal(user_id=user_id, role="user", token_id="t", expires_at=0)


def service(pool: asyncpg.Pool, key: str) -> ConnectionService:
    return ConnectionService(PostgresConnectionStore(pool), SecretBox(parse_keys(key)),
                             LoopClock())


async def test_credentials_are_stored_sealed_and_come_back(db_pool: asyncpg.Pool) -> None:
    ann = await user(db_pool)
    key = new_key()
    connections = service(db_pool, key)
    x = await connections.create(ann, ConnectionCreate(
        kind="x", access_token="plain-token-abc123", refresh_token="plain-refresh-xyz",
        username="ann", external_user_id="42"))
    hook = await connections.create(ann, ConnectionCreate(kind="webhook",
                                                          url="https://example.com/h"))
    assert hook.signing_secret is not None

    rows = await db_pool.fetch("SELECT * FROM publishing_connections WHERE user_id = $1",
                               ann.user_id)
    raw = b"".join(bytes(str(value), "utf-8") if not isinstance(value, bytes) else value
                   for row in rows for value in row.values())
    for secret in ("plain-token-abc123", "plain-refresh-xyz", hook.signing_secret,
                   hook.signing_secret.removeprefix("whsec_")):
        assert secret.encode() not in raw

    assert [c.id for c in await connections.list(ann)] == [x.id, hook.id]
    opened = await connections.open("x", ann.user_id, x.id)
    assert opened is not None
    assert opened[1].access_token == "plain-token-abc123"
    assert opened[1].refresh_token == "plain-refresh-xyz"
    assert opened[0].username == "ann" and opened[0].external_user_id == "42"
    opened_hook = await connections.open("webhook", ann.user_id, hook.id)
    assert opened_hook is not None and opened_hook[1].signing_secret == hook.signing_secret
    # Another key (another deployment, a lost key) cannot read them.
    with pytest.raises(Exception, match="PUBLISHING_ENCRYPTION_KEY"):
        await service(db_pool, new_key()).open("x", ann.user_id, x.id)


async def test_delete_is_the_owners_only(db_pool: asyncpg.Pool) -> None:
    ann, bob = await user(db_pool), await user(db_pool)
    store = PostgresConnectionStore(db_pool)
    connections = service(db_pool, new_key())
    hook = await connections.create(ann, ConnectionCreate(kind="webhook",
                                                          url="https://example.com/h"))
    assert not await store.delete(bob.user_id, hook.id)
    assert not await store.delete(ann.user_id, "not-a-uuid")
    assert await store.get("not-a-uuid") is None
    assert await store.delete(ann.user_id, hook.id)
    assert await store.get(hook.id) is None


async def test_a_removed_user_takes_their_connections(db_pool: asyncpg.Pool) -> None:
    ann = await user(db_pool)
    connections = service(db_pool, new_key())
    hook = await connections.create(ann, ConnectionCreate(kind="webhook",
                                                          url="https://example.com/h"))
    await db_pool.execute("DELETE FROM users WHERE id = $1", ann.user_id)
    assert await PostgresConnectionStore(db_pool).get(hook.id) is None
