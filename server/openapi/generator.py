"""Build the OpenAPI 3.1 document from the typed endpoint declarations.

Everything comes from `Endpoint` (server.http.endpoint): path and path parameters, operationId
(the route name), tags, bearer security, the query Struct's fields as query parameters, the
body and response types, and the problem responses each endpoint can produce. Schemas are
msgspec's JSON Schema (2020-12, which OpenAPI 3.1 uses as is), shared under
`components/schemas`; generic Structs get names like `Page_UserSummary_` (valid component
names, distinct per type argument; their `title` keeps the readable `Page[UserSummary]`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import msgspec

from protocols.problems import Problem
from server import __version__
from server.http.endpoint import Endpoint
from server.http.problems import PROBLEM_CONTENT_TYPE

OPENAPI_VERSION = "3.1.0"
REF_PREFIX = "#/components/schemas/"
SECURITY_SCHEME = "bearerAuth"
JSON = "application/json"
UNLIMITED_PREFIX = "ops."  # routes the rate limiter exempts (server.ratelimit.wiring)
FORM_SCHEMA_ATTRIBUTE = "__openapi_form__"  # set by form_schema() on a handler
_FORMS = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
BINARY_BODY: dict[str, Any] = {"type": "string", "format": "binary"}
# One aiohttp path variable: {name} or {name:regex}, the regex possibly holding {m,n}.
_PATH_VARIABLE = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?:[^{}]|\{[^{}]*\})*)?\}")

DESCRIPTION = (
    "Hubbub's REST API. Errors are RFC 9457 problem details (`application/problem+json`) "
    "with a stable `code`. Authenticate with `Authorization: Bearer <access token>`. "
    "Lists take `?limit=` and `?cursor=` and answer `{items, next_cursor}`. "
    "Rate limited per client (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy` "
    "and `RateLimit` on responses (the older `RateLimit-Limit` / `RateLimit-Remaining` "
    "too), 429 with `Retry-After` when exhausted. Posts, profiles and media metadata carry "
    "an `ETag`; send it back in `If-None-Match` for a 304. Creating POSTs take an "
    "`Idempotency-Key`. Browsers on the origins in CORS_ALLOWED_ORIGINS may call the API."
)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Response headers, shared under components/headers.
HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": {
        "description": 'The buckets this route spends from, e.g. `"default";q=1000;w=60, '
                       '"posts.create";q=10;w=60`: q requests per w seconds, per client '
                       "(an RFC 9651 list; draft-ietf-httpapi-ratelimit-headers).",
        "schema": {"type": "string"}},
    "RateLimit": {
        "description": 'What is left in each bucket after this request, e.g. '
                       '`"default";r=993;t=1`: r requests, and t seconds until the bucket is '
                       "full again (on a 429, until it allows the next request).",
        "schema": {"type": "string"}},
    "RateLimit-Limit": {
        "description": "Requests per minute in the tightest bucket (older draft)",
        "deprecated": True, "schema": {"type": "integer"}},
    "RateLimit-Remaining": {
        "description": "Requests left in that bucket (older draft)",
        "deprecated": True, "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"}},
    "ETag": {"description": "The representation's entity-tag; send it in If-None-Match",
             "required": True, "schema": {"type": "string"}},
    "Cache-Control": {"description": "`private, no-cache`: the caller's own cache may keep "
                                     "it, and revalidates it each time",
                      "schema": {"type": "string"}},
    "Vary": {"description": "Request headers the representation depends on",
             "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored response of an "
                                           "earlier request with the same Idempotency-Key",
                            "schema": {"type": "string", "enum": ["true"]}},
}
_RATE_LIMIT_HEADERS = ("RateLimit-Policy", "RateLimit", "RateLimit-Limit", "RateLimit-Remaining")
_CACHE_HEADERS = ("ETag", "Cache-Control", "Vary")
HEADER_REF_PREFIX = "#/components/headers/"
IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": "Makes a retry safe: a request with a key already used returns the first "
                   "result (`Idempotent-Replayed: true`) and creates nothing; 422 "
                   "`idempotency_key_reused` for another request, 409 "
                   "`idempotency_in_progress` while the first runs. Per user and route, "
                   "kept 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": "^[\\x21-\\x7e]+$"},
}
# Path and query parameter schemas for Endpoint.params: what the server recognises.
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid",
                               "pattern": f"^{_UUID}$(?!\\n)"}
USER_REF_SCHEMA: dict[str, Any] = {
    "type": "string", "minLength": 2, "maxLength": 64,
    "pattern": f"^(?:me|@[^\\x00-\\x1f\\x7f]{{1,63}}|{_UUID})$(?!\\n)",
    "description": "A user id, `@username`, or `me` (you)",
}
ID_PARAMS: Mapping[str, Any] = MappingProxyType({"id": UUID_SCHEMA})
USER_REF_PARAMS: Mapping[str, Any] = MappingProxyType({"id": USER_REF_SCHEMA})
IF_NONE_MATCH_PARAMETER: dict[str, Any] = {
    "name": "If-None-Match", "in": "header", "required": False,
    "description": "ETags of representations you hold (or `*`): 304 when one is current",
    "schema": {"type": "string"},
}


def openapi_path(path: str) -> tuple[str, list[str]]:
    """aiohttp's `/v1/users/{id:[0-9]+}` -> (`/v1/users/{id}`, ["id"])."""
    names = [m.group("name") for m in _PATH_VARIABLE.finditer(path)]
    return _PATH_VARIABLE.sub(lambda m: "{" + m.group("name") + "}", path), names


def build_openapi(
    endpoints: Sequence[Endpoint], *, title: str = "Hubbub", version: str = __version__
) -> dict[str, Any]:
    """The whole document as plain JSON-ready data. Raises ValueError on duplicate route
    names (they are the operationIds) and TypeError for a type msgspec cannot describe."""
    names = [e.name for e in endpoints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate route names: {', '.join(duplicates)}")

    types = _unique([Problem, *(t for e in endpoints
                                for t in (e.body, e.json_body, e.query, e.response)
                                if t is not None)])
    schemas, components = msgspec.json.schema_components(
        types, ref_template=REF_PREFIX + "{name}"
    )
    schema_of = dict(zip(types, schemas, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path, _ = openapi_path(endpoint.path)
        operation = _operation(endpoint, schema_of, components)
        paths.setdefault(path, {})[endpoint.method.lower()] = operation

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in _unique(e.tag for e in endpoints)],
        "paths": paths,
        "components": {
            "schemas": components,
            "headers": HEADERS,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                  "description": "An access token from /v1/auth/login"},
            },
        },
    }


def _operation(endpoint: Endpoint, schema_of: dict[Any, Any],
               components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    _, path_names = openapi_path(endpoint.path)
    parameters = [_path_parameter(name, endpoint.params) for name in path_names]
    if endpoint.query is not None:
        parameters += _query_parameters(schema_of[endpoint.query], components, endpoint.params)
    if endpoint.idempotent:
        parameters.append(IDEMPOTENCY_PARAMETER)
    if endpoint.etag:
        parameters.append(IF_NONE_MATCH_PARAMETER)
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(endpoint, schema_of)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(endpoint, schema_of)
    if endpoint.auth:
        operation["security"] = [{SECURITY_SCHEME: []}]
    if endpoint.roles is not None:
        operation["x-roles"] = sorted(endpoint.roles)
    if endpoint.rate_limit is not None:
        operation["x-rate-limit-per-minute"] = endpoint.rate_limit
    return operation


def _path_parameter(name: str, declared: Mapping[str, Any]) -> dict[str, Any]:
    schema = dict(declared.get(name, {"type": "string"}))
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if "description" in schema:
        parameter["description"] = schema["description"]
    return parameter


def _query_parameters(schema: dict[str, Any], components: dict[str, Any],
                      declared: Mapping[str, Any]) -> list[dict]:
    """Each field of the query Struct becomes one `in: query` parameter (its schema
    replaced by the endpoint's `params` entry of that name, if any)."""
    resolved = _resolve(schema, components)
    required = set(resolved.get("required", ()))
    parameters = []
    for name, field_schema in resolved.get("properties", {}).items():
        field_schema = dict(declared.get(name, field_schema))
        parameter: dict[str, Any] = {"name": name, "in": "query",
                                     "required": name in required, "schema": field_schema}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


def _request_body(endpoint: Endpoint, schema_of: dict[Any, Any]) -> dict[str, Any] | None:
    if endpoint.body is not None:
        schema = {**schema_of[endpoint.body], **endpoint.body_rules}
        return {"required": True,
                "content": {ct: {"schema": schema} for ct in endpoint.content_types}}
    # No typed body: JSON the handler decodes itself (`json_body`), a form (its fields from
    # @form_schema on the handler, when declared) or raw bytes (e.g. an image PUT).
    content: dict[str, Any] = {}
    if endpoint.json_body is not None and JSON in endpoint.content_types:
        content[JSON] = {"schema": {**schema_of[endpoint.json_body], **endpoint.body_rules}}
    form = getattr(endpoint.handler, FORM_SCHEMA_ATTRIBUTE, None) or {"type": "object"}
    for ct in endpoint.content_types:
        if ct != JSON:
            content[ct] = {"schema": form if ct in _FORMS else BINARY_BODY}
    return {"required": True, "content": content} if content else None


def form_schema(properties: dict[str, Any], *, required: Sequence[str] = ()
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe a handler's form body (multipart/form-data) for OpenAPI. Apply it below the
    Endpoints route decorator: `@api.post(..., content_types=("multipart/form-data",))` then
    `@form_schema({"file": {"type": "string", "format": "binary"}}, required=["file"])`."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)

    def attach(handler: Callable[..., Any]) -> Callable[..., Any]:
        setattr(handler, FORM_SCHEMA_ATTRIBUTE, schema)
        return handler

    return attach


def _responses(endpoint: Endpoint, schema_of: dict[Any, Any]) -> dict[str, Any]:
    limited = not endpoint.name.startswith(UNLIMITED_PREFIX)
    # Every response of a rate-limited route carries the rate-limit fields, problems too.
    common = _header_refs(_RATE_LIMIT_HEADERS) if limited else {}
    responses: dict[str, Any] = {}
    for status in (endpoint.status, *endpoint.other_statuses):
        success: dict[str, Any] = {"description": _phrase(status)}
        if endpoint.response is not None and status != 204:
            success["content"] = {JSON: {"schema": schema_of[endpoint.response]}}
        elif status == 204:
            success["description"] = "No content"
        headers = dict(common)
        if endpoint.etag and status == 200:
            headers |= _header_refs(_CACHE_HEADERS)
        if endpoint.idempotent:
            headers |= _header_refs(("Idempotent-Replayed",))
        if headers:
            success["headers"] = headers
        responses[str(status)] = success
    if endpoint.etag:
        responses["304"] = {"description": "Not Modified: the representation whose ETag you "
                            "sent in If-None-Match is current (no body)",
                            "headers": common | _header_refs(_CACHE_HEADERS)}

    problems: set[int] = set(endpoint.errors)
    if endpoint.auth:
        problems.add(401)
    if endpoint.roles is not None:
        problems.add(403)
    decoded = endpoint.body is not None or endpoint.json_body is not None
    if decoded or endpoint.query is not None:
        problems |= {400, 422}
    if decoded:
        problems |= {413, 415}
    if endpoint.idempotent:
        problems |= {400, 409, 422}  # malformed key; still running; reused for another request
    if limited:
        problems.add(429)
    for status in sorted(p for p in problems if str(p) not in responses):
        response: dict[str, Any] = {
            "description": _phrase(status),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF_PREFIX + "Problem"}}},
        }
        headers = dict(common)
        if status == 429:
            headers |= _header_refs(("Retry-After",))
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses


def _header_refs(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": HEADER_REF_PREFIX + name} for name in names}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].removeprefix(REF_PREFIX)]
    return schema


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))
