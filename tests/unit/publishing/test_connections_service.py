"""Connections: webhook URLs vetted, the secret shown once, nothing secret listed, others'
connections invisible, credentials sealed before the store sees them."""

from __future__ import annotations

import msgspec
import pytest

from protocols.publishing_connections import ConnectionCreate
from server.http.problems import NotFound, ValidationFailed
from tests.unit.publishing.fakes import MemoryConnectionStore
from tests.unit.publishing.kit import ANN, BOB, service, webhook, x_account


async def test_a_webhook_gets_its_secret_once_and_lists_without_it() -> None:
    store = MemoryConnectionStore()
    connections = service(store)
    created = await connections.create(ANN, webhook("https://example.com/hooks"))
    assert created.signing_secret is not None and created.signing_secret.startswith("whsec_")
    [listed] = await connections.list(ANN)
    assert listed.id == created.id and listed.url == "https://example.com/hooks"
    encoded = msgspec.json.encode(listed)
    assert b"whsec_" not in encoded and b"signing_secret" not in encoded
    assert created.signing_secret.encode() not in store.rows[created.id].sealed
    assert await connections.list(BOB) == []


async def test_an_x_token_is_sealed_and_never_listed() -> None:
    store = MemoryConnectionStore()
    connections = service(store)
    created = await connections.create(ANN, x_account("secret-user-token"))
    assert created.signing_secret is None
    assert b"secret-user-token" not in store.rows[created.id].sealed
    assert b"secret-user-token" not in msgspec.json.encode(await connections.list(ANN))
    opened = await connections.open("x", ANN.user_id, created.id)
    assert opened is not None and opened[1].access_token == "secret-user-token"
    assert await connections.open("x", BOB.user_id, created.id) is None
    assert await connections.open("webhook", ANN.user_id, created.id) is None
    assert await connections.owns("x", ANN.user_id, created.id)
    assert not await connections.owns("x", BOB.user_id, created.id)


@pytest.mark.parametrize(("body", "code"), [
    (ConnectionCreate(kind="webhook"), "url_required"),
    (webhook("http://example.com/hooks"), "insecure_url"),
    (webhook("http://10.0.0.1/hooks"), "insecure_url"),
    (webhook("https://user:pw@example.com/"), "invalid_url"),
    (ConnectionCreate(kind="webhook", url="https://example.com", access_token="t"),
     "invalid_field"),
    (ConnectionCreate(kind="x"), "access_token_required"),
    (ConnectionCreate(kind="x", access_token="t", url="https://example.com"), "invalid_field"),
])
async def test_bad_connections_are_422(body: ConnectionCreate, code: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await service().create(ANN, body)
    assert caught.value.code == code


async def test_http_to_localhost_only_where_allowed() -> None:
    assert await service().create(ANN, webhook("http://127.0.0.1:9/h"))
    assert await service().create(ANN, webhook("http://localhost:9/h"))


async def test_removing_someone_elses_connection_is_404() -> None:
    connections = service()
    created = await connections.create(ANN, webhook("https://example.com/hooks"))
    with pytest.raises(NotFound):
        await connections.delete(BOB, created.id)
    await connections.delete(ANN, created.id.upper())
    assert await connections.list(ANN) == []
    with pytest.raises(NotFound):
        await connections.delete(ANN, created.id)
