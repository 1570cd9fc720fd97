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
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
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
    "Rate limited per client: `RateLimit-Limit` / `RateLimit-Remaining` on responses, "
    "429 with `Retry-After` when exhausted."
)


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

    types = _unique([Problem, *(t for e in endpoints for t in (e.body, e.query, e.response)
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
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in path_names]
    if endpoint.query is not None:
        parameters += _query_parameters(schema_of[endpoint.query], components)
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


def _query_parameters(schema: dict[str, Any], components: dict[str, Any]) -> list[dict]:
    """Each field of the query Struct becomes one `in: query` parameter."""
    resolved = _resolve(schema, components)
    required = set(resolved.get("required", ()))
    parameters = []
    for name, field_schema in resolved.get("properties", {}).items():
        parameter: dict[str, Any] = {"name": name, "in": "query",
                                     "required": name in required, "schema": field_schema}
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


def _request_body(endpoint: Endpoint, schema_of: dict[Any, Any]) -> dict[str, Any] | None:
    if endpoint.body is not None:
        schema = schema_of[endpoint.body]
        return {"required": True,
                "content": {ct: {"schema": schema} for ct in endpoint.content_types}}
    # No typed body but a non-JSON content type: a form (its fields from @form_schema on the
    # handler, when declared) or raw bytes (e.g. an image PUT).
    others = [ct for ct in endpoint.content_types if ct != JSON]
    if others:
        form = getattr(endpoint.handler, FORM_SCHEMA_ATTRIBUTE, None) or {"type": "object"}
        return {"required": True,
                "content": {ct: {"schema": form if ct in _FORMS else BINARY_BODY}
                            for ct in others}}
    return None


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
    success: dict[str, Any] = {"description": _phrase(endpoint.status)}
    if endpoint.response is not None and endpoint.status != 204:
        success["content"] = {JSON: {"schema": schema_of[endpoint.response]}}
    elif endpoint.status == 204:
        success["description"] = "No content"
    if limited:
        success["headers"] = {
            "RateLimit-Limit": {"description": "Requests per minute in the tightest bucket",
                                "schema": {"type": "integer"}},
            "RateLimit-Remaining": {"description": "Requests left in that bucket",
                                    "schema": {"type": "integer"}},
        }
    responses: dict[str, Any] = {str(endpoint.status): success}

    problems: set[int] = set(endpoint.errors)
    if endpoint.auth:
        problems.add(401)
    if endpoint.roles is not None:
        problems.add(403)
    if endpoint.body is not None or endpoint.query is not None:
        problems |= {400, 422}
    if endpoint.body is not None:
        problems |= {413, 415}
    if limited:
        problems.add(429)
    for status in sorted(problems - {endpoint.status}):
        response: dict[str, Any] = {
            "description": _phrase(status),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF_PREFIX + "Problem"}}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {
                "description": "Seconds to wait before retrying", "schema": {"type": "integer"},
            }}
        responses[str(status)] = response
    return responses


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
