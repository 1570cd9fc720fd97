"""Connections: create (credentials sealed before they reach the store), list, remove, and
open them for the publishers."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address
from urllib.parse import urlsplit

import msgspec

from actors.clock import Clock
from protocols.ids import new_id
from protocols.problems import FieldError
from protocols.publishing_connections import (
    Connection,
    ConnectionCreate,
    ConnectionCreated,
    ConnectionRecord,
    Credentials,
)
from server.auth.principal import Principal
from server.http.problems import NotFound, ValidationFailed
from server.publishing.crypto import SecretBox, connection_context
from server.publishing.ports import ConnectionStore
from server.publishing.signing import new_secret

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Credentials).decode


class ConnectionService:
    def __init__(self, store: ConnectionStore, box: SecretBox, clock: Clock, *,
                 allow_http_localhost: bool = False) -> None:
        self._store = store
        self._box = box
        self._clock = clock
        self._allow_http_localhost = allow_http_localhost

    async def create(self, caller: Principal, body: ConnectionCreate) -> ConnectionCreated:
        connection_id = new_id()
        secret: str | None = None
        if body.kind == "webhook":
            _refuse_fields(body, "access_token", "refresh_token", "expires_at",
                           "external_user_id", "username")
            if body.url is None:
                raise _invalid("url", "A webhook needs a url", "url_required")
            self._check_url(body.url)
            secret = new_secret()
            credentials = Credentials(signing_secret=secret)
        else:
            _refuse_fields(body, "url")
            if body.access_token is None:
                raise _invalid("access_token", "An x connection needs the OAuth 2.0 user "
                               "access_token", "access_token_required")
            credentials = Credentials(access_token=body.access_token,
                                      refresh_token=body.refresh_token)
        sealed = self._box.seal(_encode(credentials),
                                context=connection_context(body.kind, connection_id))
        record = ConnectionRecord(
            id=connection_id, user_id=caller.user_id, kind=body.kind, label=body.label,
            url=body.url, external_user_id=body.external_user_id, username=body.username,
            expires_at=body.expires_at, sealed=sealed,
            created_at=datetime.fromtimestamp(self._clock.time(), UTC))
        await self._store.insert(record)
        return ConnectionCreated(**msgspec.structs.asdict(_public(record)),
                                 signing_secret=secret)

    async def list(self, caller: Principal) -> list[Connection]:
        return [_public(record) for record in await self._store.list_for(caller.user_id)]

    async def delete(self, caller: Principal, connection_id: str) -> None:
        if not await self._store.delete(caller.user_id, connection_id.lower()):
            raise _not_found(connection_id)

    async def owns(self, kind: str, user_id: str, connection_id: str) -> bool:
        """For the scheduling registry: a connection of this kind, of this user."""
        record = await self._store.get(connection_id)
        return record is not None and record.user_id == user_id and record.kind == kind

    async def open(self, kind: str, user_id: str,
                   connection_id: str) -> tuple[ConnectionRecord, Credentials] | None:
        """The connection and its credentials in clear, if it is still the user's and of this
        kind (None when removed). Raises crypto.SealError when the keys do not open it."""
        record = await self._store.get(connection_id)
        if record is None or record.user_id != user_id or record.kind != kind:
            return None
        plain = self._box.open(record.sealed, context=connection_context(kind, record.id))
        return record, _decode(plain)

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise _invalid("url", "The url has no host", "invalid_url")
        if parts.username is not None or parts.password is not None:
            raise _invalid("url", "Put no credentials in the url: deliveries are signed",
                           "invalid_url")
        if parts.scheme.lower() == "https":
            return
        if self._allow_http_localhost and _is_local(host):
            return
        raise _invalid("url", "A webhook url must be https", "insecure_url")


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _public(record: ConnectionRecord) -> Connection:
    return Connection(id=record.id, kind=record.kind, label=record.label, url=record.url,
                      external_user_id=record.external_user_id, username=record.username,
                      expires_at=record.expires_at, created_at=record.created_at)


def _refuse_fields(body: ConnectionCreate, *names: str) -> None:
    for name in names:
        if getattr(body, name) is not None:
            raise _invalid(name, f"A {body.kind} connection takes no {name}", "invalid_field")


def _invalid(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])


def _not_found(raw_id: str) -> NotFound:
    return NotFound(f"No publishing connection {raw_id!r}", code="connection_not_found")
