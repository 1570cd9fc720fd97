"""Typed endpoints: one declaration gives routing, decoding, auth, limits and OpenAPI.

    api = Endpoints("auth")

    @api.post("/v1/auth/signup", name="auth.signup", body=SignupRequest,
              response=AuthResponse, status=201, auth=False, summary="Create an account")
    async def signup(request: web.Request, body: SignupRequest) -> AuthResponse: ...

The handler receives `body` (decoded JSON), `query` (decoded query string) and `principal`
(the verified caller) as keyword arguments when the declaration asks for them. It returns a
msgspec Struct (or list/dict) encoded with `status`, None for an empty 204, or any
`web.StreamResponse` to take over the response itself.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from protocols.problems import FieldError
from protocols.roles import Role
from protocols.validation import explain
from server.auth.principal import Principal
from server.http.caching import conditional
from server.http.problems import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

Handler = Callable[..., Awaitable[Any]]
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_encoder = msgspec.json.Encoder()
_PATH = re.compile(r" - at `\$\.?(.*)`$")

# Who made the request, once an endpoint that needs a token has checked it (the request log).
PRINCIPAL = web.RequestKey("principal", Principal)


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    name: str  # stable route name: rate-limit keys, metrics labels, OpenAPI operationId
    summary: str
    tag: str
    handler: Handler
    body: type | None = None
    query: type | None = None
    response: Any = None  # a type, or None for an empty body
    status: int = 200
    auth: bool = True
    roles: frozenset[str] | None = None  # None: any authenticated caller
    rate_limit: int | None = None  # requests per minute per client; None: the global default
    max_body: int | None = None  # bytes; None: MAX_JSON_BODY_BYTES
    errors: tuple[int, ...] = ()  # problem statuses worth documenting beyond the usual ones
    description: str = ""
    content_types: tuple[str, ...] = ("application/json",)
    decoder: Any = field(default=None, compare=False)
    # Documentation only (the handler reads these itself):
    # - json_body: the JSON body of a route that also takes a form, so has no `body` to decode
    # - idempotent: the route honours an Idempotency-Key header (server.http.idempotency)
    # - other_statuses: further success statuses answered with the same `response` shape
    # - params: JSON Schemas of path and query parameters by name, where their types say
    #   too little (a path id is a UUID; a filter takes a user id, @username or `me`)
    # - body_rules: JSON Schema keywords the body must also meet, rules across its fields
    #   a Struct's schema cannot state (e.g. {"minProperties": 1})
    json_body: type | None = None
    idempotent: bool = False
    other_statuses: tuple[int, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    body_rules: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # A GET whose 200 carries an ETag of its body, `Cache-Control: private, no-cache` and
    # (with auth) `Vary: Authorization`, and answers a matching If-None-Match with 304
    # (server.http.caching). Applied here, so the handler just returns its result.
    etag: bool = False


def field_errors(exc: msgspec.ValidationError, location: str = "") -> list[FieldError]:
    """Turn msgspec's "Expected `int` >= 1 - at `$.limit`" into [{field: "limit", ...}]
    (that one error, as msgspec reported it; `invalid_fields` names them all, in words)."""
    text = str(exc)
    match = _PATH.search(text)
    path = match.group(1) if match else ""
    message = _PATH.sub("", text)
    return [FieldError(field=f"{location}{path}" if path else location.rstrip(".") or "$",
                       message=message)]


def invalid_fields(what: str, data: Any, shape: type, exc: msgspec.ValidationError, *,
                   strict: bool = True) -> ValidationFailed:
    """The 422 for `data` that did not convert to `shape` (raising `exc`): every invalid
    field at once, each with a message a person can read (protocols.validation)."""
    is_struct = isinstance(shape, type) and issubclass(shape, msgspec.Struct)
    errors = explain(data, shape, strict=strict) if is_struct else []
    if not errors:  # not a Struct, or the fast path and the field checks disagree
        errors = field_errors(exc)
    names = ", ".join(dict.fromkeys(error.field for error in errors))
    return ValidationFailed(f"{what} is invalid: {names}", errors=errors)


def decode_query(request: web.Request, query_type: type) -> Any:
    query = dict(request.query)
    try:
        return msgspec.convert(query, query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid_fields("The query", query, query_type, exc, strict=False) from None


def decode_json(raw: bytes, decoder: msgspec.json.Decoder, shape: type) -> Any:
    """A JSON body as `shape` (decoded by `decoder`, built once for it): 400 when it is not
    JSON (or not UTF-8), 422 naming every invalid field."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        try:
            data = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            # The typed decode stopped at a bad field before the bad JSON after it.
            raise BadRequest("The body is not valid JSON") from None
        raise invalid_fields("The body", data, shape, exc) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8") from None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it grows past `limit` bytes.

    StreamReader.read(n) returns whatever has arrived so far, so read until EOF.
    """
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_json_body(request: web.Request, endpoint: Endpoint, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json")
    raw = await read_body(request, limit)
    if not raw.strip():
        raise BadRequest("A JSON body is required")
    return decode_json(raw, endpoint.decoder, endpoint.body)


def encode_result(result: Any, status: int) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204 if status in (200, 204) else status)
    return web.Response(status=status, body=_encoder.encode(result),
                        content_type="application/json")


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send Authorization: Bearer <access token>", code="missing_token")
    return token.strip()


def _wrap(endpoint: Endpoint, fn: Handler) -> RouteHandler:
    # Imported here: server.keys imports this module for the Endpoint type.
    from server.keys import AUTHENTICATOR, SETTINGS

    async def handler(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if endpoint.auth:
            principal = request.app[AUTHENTICATOR](bearer_token(request))
            if endpoint.roles is not None and principal.role not in endpoint.roles:
                raise Forbidden(f"This needs one of the roles: {', '.join(sorted(endpoint.roles))}")
            request[PRINCIPAL] = principal
            kwargs["principal"] = principal
        if endpoint.query is not None:
            kwargs["query"] = decode_query(request, endpoint.query)
        if endpoint.body is not None:
            limit = endpoint.max_body or request.app[SETTINGS].max_json_body_bytes
            kwargs["body"] = await decode_json_body(request, endpoint, limit)
        response = encode_result(await fn(request, **kwargs), endpoint.status)
        if endpoint.etag and isinstance(response, web.Response):
            return conditional(request, response, private=endpoint.auth)
        return response

    handler.__endpoint__ = endpoint  # type: ignore[attr-defined]
    handler.__name__ = fn.__name__
    return handler


class Endpoints:
    """The typed endpoints of one area (one OpenAPI tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._routes: list[tuple[Endpoint, RouteHandler]] = []

    def route(self, method: str, path: str, *, name: str, summary: str,
              **options: Any) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            body = options.get("body")
            endpoint = Endpoint(method=method, path=path, name=name, summary=summary,
                                tag=self.tag, handler=fn,
                                decoder=msgspec.json.Decoder(body) if body else None, **options)
            self._routes.append((endpoint, _wrap(endpoint, fn)))
            return fn
        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [endpoint for endpoint, _ in self._routes]

    def register(self, app: web.Application) -> None:
        from server.keys import ENDPOINTS

        for endpoint, handler in self._routes:
            app.router.add_route(endpoint.method, endpoint.path, handler, name=endpoint.name)
        app[ENDPOINTS].extend(self.endpoints)


def current_endpoint(request: web.Request) -> Endpoint | None:
    """The Endpoint declaration behind the matched route, if the route is a typed one."""
    return getattr(request.match_info.handler, "__endpoint__", None)


def require_role(principal: Any, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(f"This needs one of the roles: {', '.join(roles)}")
