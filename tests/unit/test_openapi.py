"""The OpenAPI document: generated from the typed endpoints of a real (unstarted) app."""

from __future__ import annotations

import re
from importlib import resources
from typing import Annotated, Any

import msgspec
import pytest
from aiohttp import web

from protocols.base import Inbound, Outbound
from protocols.common import Page, PageQuery
from server.app import create_app
from server.config import load_settings
from server.http.endpoint import Endpoint, Endpoints
from server.keys import ENDPOINTS
from server.openapi.generator import build_openapi, openapi_path
from server.openapi.wiring import openapi_document
from tests.support.json_refs import lookup, refs

COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")  # OpenAPI 3.1, components map keys


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> web.Application:
    data_dir = tmp_path_factory.mktemp("openapi")
    # Not started: every area registers its routes while the app is constructed.
    return create_app(load_settings({"JWT_SECRET": "x" * 32, "DATA_DIR": str(data_dir)}))


@pytest.fixture(scope="module")
def document(app: web.Application) -> dict[str, Any]:
    return openapi_document(app)


def typed_routes(app: web.Application) -> list[Endpoint]:
    return [route.handler.__endpoint__ for route in app.router.routes()
            if hasattr(route.handler, "__endpoint__")]


def test_every_typed_route_is_documented(app: web.Application,
                                         document: dict[str, Any]) -> None:
    routes = typed_routes(app)
    assert {e.name for e in routes} >= {"ops.health", "ops.ready", "ops.info",
                                        "docs.openapi", "docs.page"}
    for endpoint in routes:
        path, _ = openapi_path(endpoint.path)
        operation = document["paths"][path][endpoint.method.lower()]
        assert operation["operationId"] == endpoint.name
        assert operation["summary"] == endpoint.summary
        assert operation["tags"] == [endpoint.tag]
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) == len(routes) == len(app[ENDPOINTS])


def test_schemas_are_present_where_declared(app: web.Application,
                                            document: dict[str, Any]) -> None:
    for endpoint in app[ENDPOINTS]:
        operation = document["paths"][openapi_path(endpoint.path)[0]][endpoint.method.lower()]
        success = operation["responses"][str(endpoint.status)]
        if endpoint.response is not None and endpoint.status != 204:
            assert success["content"]["application/json"]["schema"], endpoint.name
        else:
            assert "content" not in success, endpoint.name
        if endpoint.body is not None:
            body = operation["requestBody"]
            assert body["required"] and body["content"]["application/json"]["schema"]
            assert {"400", "413", "415", "422"} <= operation["responses"].keys()
        if endpoint.auth:
            assert operation["security"] == [{"bearerAuth": []}]
            assert "401" in operation["responses"]
        else:
            assert "security" not in operation
        for status in endpoint.errors:
            assert str(status) in operation["responses"]


def test_problem_responses_share_the_problem_schema(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            limited = not operation["operationId"].startswith("ops.")
            assert ("429" in operation["responses"]) == limited, (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response["content"]["application/problem+json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            if limited:
                assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_every_ref_resolves_and_names_are_valid(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    for ref in found:
        assert lookup(document, ref) is not None
    assert all(COMPONENT_NAME.match(name) for name in document["components"]["schemas"])


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert document["openapi"] == "3.1.0"
    # Through JSON, exactly as served.
    validator.validate(msgspec.json.decode(msgspec.json.encode(document)))


# A synthetic area exercising what the real ones may not use yet.
class Widget(Outbound):
    id: str
    size: int


class Gadget(Outbound):
    id: str


class WidgetQuery(Inbound):
    kind: Annotated[str, msgspec.Meta(description="Only this kind")]
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class NewWidget(Inbound):
    size: Annotated[int, msgspec.Meta(ge=1)]


sample = Endpoints("widgets")


@sample.get("/v1/widgets", name="widgets.list", query=WidgetQuery, response=Page[Widget],
            summary="List widgets")
async def list_widgets(request: web.Request, **_: Any) -> None: ...


@sample.get("/v1/gadgets", name="gadgets.list", query=PageQuery, response=Page[Gadget],
            auth=False, summary="List gadgets")
async def list_gadgets(request: web.Request, **_: Any) -> None: ...


@sample.post("/v1/widgets/{id:[0-9a-f]{8}}/parts/{part}", name="widgets.add_part",
             body=NewWidget, response=Widget, status=201, roles=frozenset({"admin"}),
             errors=(404, 409), rate_limit=10, summary="Add a part")
async def add_part(request: web.Request, **_: Any) -> None: ...


@sample.delete("/v1/widgets/{id}", name="widgets.delete", status=204, summary="Delete")
async def delete_widget(request: web.Request, **_: Any) -> None: ...


@sample.post("/v1/widgets/upload", name="widgets.upload", response=Widget,
             content_types=("multipart/form-data",), summary="Upload")
async def upload(request: web.Request, **_: Any) -> None: ...


@pytest.fixture(scope="module")
def synthetic() -> dict[str, Any]:
    return build_openapi(sample.endpoints)


def test_generic_pages_get_distinct_valid_names(synthetic: dict[str, Any]) -> None:
    widgets = synthetic["paths"]["/v1/widgets"]["get"]["responses"]["200"]
    gadgets = synthetic["paths"]["/v1/gadgets"]["get"]["responses"]["200"]
    widget_ref = widgets["content"]["application/json"]["schema"]["$ref"]
    gadget_ref = gadgets["content"]["application/json"]["schema"]["$ref"]
    assert widget_ref != gadget_ref
    page = lookup(synthetic, widget_ref)
    assert page["title"] == "Page[Widget]"
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Widget"}
    assert all(COMPONENT_NAME.match(name) for name in synthetic["components"]["schemas"])


def test_query_fields_become_parameters(synthetic: dict[str, Any]) -> None:
    parameters = synthetic["paths"]["/v1/widgets"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert set(by_name) == {"kind", "limit"}
    assert by_name["kind"]["in"] == "query" and by_name["kind"]["required"] is True
    assert by_name["kind"]["description"] == "Only this kind"
    assert by_name["limit"]["required"] is False
    assert by_name["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100,
                                          "default": 20}
    gadgets = synthetic["paths"]["/v1/gadgets"]["get"]
    assert [p["name"] for p in gadgets["parameters"]] == ["limit", "cursor"]
    assert {"400", "422"} <= gadgets["responses"].keys() and "401" not in gadgets["responses"]


def test_path_parameters_body_roles_and_extra_errors(synthetic: dict[str, Any]) -> None:
    operation = synthetic["paths"]["/v1/widgets/{id}/parts/{part}"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("id", "path", True), ("part", "path", True)]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert lookup(synthetic, body["$ref"])["properties"]["size"]["minimum"] == 1
    assert set(operation["responses"]) == {"201", "400", "401", "403", "404", "409", "413",
                                           "415", "422", "429"}
    assert operation["x-roles"] == ["admin"] and operation["x-rate-limit-per-minute"] == 10


def test_no_content_and_non_json_bodies(synthetic: dict[str, Any]) -> None:
    deleted = synthetic["paths"]["/v1/widgets/{id}"]["delete"]["responses"]["204"]
    assert "content" not in deleted
    upload = synthetic["paths"]["/v1/widgets/upload"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]


def test_synthetic_document_is_valid(synthetic: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(synthetic)
    for ref in refs(synthetic):
        lookup(synthetic, ref)


def test_duplicate_route_names_are_refused() -> None:
    twice = [*sample.endpoints, sample.endpoints[0]]
    with pytest.raises(ValueError, match=r"widgets\.list"):
        build_openapi(twice)


@pytest.mark.parametrize(("aiohttp_path", "expected"), [
    ("/v1/users/{id}", ("/v1/users/{id}", ["id"])),
    ("/v1/x/{id:\\d+}/y/{name}", ("/v1/x/{id}/y/{name}", ["id", "name"])),
    ("/v1/x/{code:[a-z]{2,3}}", ("/v1/x/{code}", ["code"])),
    ("/health", ("/health", [])),
])
def test_openapi_path(aiohttp_path: str, expected: tuple[str, list[str]]) -> None:
    assert openapi_path(aiohttp_path) == expected


def test_docs_page_ships_with_the_package_and_names_no_external_url() -> None:
    static = resources.files("server") / "static"
    for name in ("docs.html", "docs.js", "docs.css"):
        text = (static / name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, name


# Issue 12: what the server does that the document must say.

def operation_of(document: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    return document["paths"][openapi_path(endpoint.path)[0]][endpoint.method.lower()]


def test_every_declared_request_content_type_has_a_schema(
        app: web.Application, document: dict[str, Any]) -> None:
    for endpoint in app[ENDPOINTS]:
        takes_body = (endpoint.body is not None or endpoint.json_body is not None
                      or endpoint.content_types != ("application/json",))
        operation = operation_of(document, endpoint)
        if not takes_body:
            assert "requestBody" not in operation, endpoint.name
            continue
        content = operation["requestBody"]["content"]
        assert set(content) == set(endpoint.content_types), endpoint.name
        for media_type, entry in content.items():
            assert entry["schema"], (endpoint.name, media_type)


def test_creating_a_post_documents_json_and_multipart(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/posts"]["post"]["requestBody"]["content"]
    body = lookup(document, content["application/json"]["schema"]["$ref"])
    assert {"text", "media_ids", "reply_to_id", "quote_of_id"} <= set(body["properties"])
    assert body["properties"]["media_ids"]["maxItems"] == 10
    assert "files" in content["multipart/form-data"]["schema"]["properties"]


IDEMPOTENT = {"posts.create", "media.upload", "media.create_upload"}


def test_routes_honouring_idempotency_keys_declare_the_header(
        document: dict[str, Any]) -> None:
    declared = {operation["operationId"]: operation for item in document["paths"].values()
                for operation in item.values()
                if any(p["name"] == "Idempotency-Key" and p["in"] == "header"
                       for p in operation.get("parameters", ()))}
    assert IDEMPOTENT <= set(declared)
    # chat.send honours it too (server/chat/routes.py); declared once its route says so.
    assert set(declared) <= IDEMPOTENT | {"chat.send"}
    for operation in declared.values():
        assert {"409", "422"} <= operation["responses"].keys()
        success = next(r for s, r in operation["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"]


@pytest.mark.parametrize("path", ["/v1/posts/{id}", "/v1/posts/{id}/like",
                                  "/v1/posts/{id}/comments", "/v1/media/{id}",
                                  "/v1/media/{id}/complete"])
def test_id_path_parameters_are_uuids(document: dict[str, Any], path: str) -> None:
    for operation in document["paths"][path].values():
        [parameter] = [p for p in operation["parameters"] if p["in"] == "path"]
        assert parameter["schema"]["format"] == "uuid"
        pattern = re.compile(parameter["schema"]["pattern"])
        assert pattern.match("01890a5d-ac96-774b-bcce-b302099a8057")
        assert not pattern.match("01890a5d") and not pattern.match("@bob")


@pytest.mark.parametrize(("path", "name"), [("/v1/users/{id}", "id"),
                                            ("/v1/users/{id}/follow", "id"),
                                            ("/v1/users/{id}/posts", "id"),
                                            ("/v1/posts", "author")])
def test_user_references_take_an_id_a_username_or_me(document: dict[str, Any], path: str,
                                                     name: str) -> None:
    operation = document["paths"][path].get("get") or document["paths"][path]["post"]
    [parameter] = [p for p in operation["parameters"] if p["name"] == name]
    pattern = re.compile(parameter["schema"]["pattern"])
    for good in ("me", "@bob_1", "01890a5d-ac96-774b-bcce-b302099a8057"):
        assert pattern.match(good), good
    for bad in ("bob", "", "@", "me2", "01890a5d"):
        assert not pattern.match(bad), bad


def test_patch_bodies_that_need_a_field_say_so(app: web.Application,
                                               document: dict[str, Any]) -> None:
    schema = (document["paths"]["/v1/users/me"]["patch"]["requestBody"]["content"]
              ["application/json"]["schema"])
    assert schema["minProperties"] == 1 and schema["$ref"].endswith("/ProfilePatch")


def test_a_repeated_repost_is_200_the_first_201(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/posts/{id}/repost"]["post"]["responses"]
    for status in ("200", "201"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Post"}


CACHEABLE = [("/v1/posts/{id}", "posts.get"), ("/v1/users/{id}", "users.get"),
             ("/v1/media/{id}", "media.get")]


@pytest.mark.parametrize(("path", "name"), CACHEABLE)
def test_cacheable_gets_declare_etag_and_304(document: dict[str, Any], path: str,
                                             name: str) -> None:
    operation = document["paths"][path]["get"]
    assert operation["operationId"] == name
    assert any(p["name"] == "If-None-Match" and p["in"] == "header"
               for p in operation["parameters"])
    for status in ("200", "304"):
        headers = operation["responses"][status]["headers"]
        assert {"ETag", "Cache-Control", "Vary"} <= set(headers), status
        assert lookup(document, headers["ETag"]["$ref"])["required"] is True
    assert "content" not in operation["responses"]["304"]


def test_only_the_cacheable_gets_declare_304(app: web.Application,
                                             document: dict[str, Any]) -> None:
    with_304 = {e.name for e in app[ENDPOINTS]
                if "304" in operation_of(document, e)["responses"]}
    assert with_304 == {name for _, name in CACHEABLE}


def test_rate_limited_responses_declare_the_ratelimit_fields(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= set(headers)
    assert headers["RateLimit-Limit"]["deprecated"] is True
    for item in document["paths"].values():
        for operation in item.values():
            limited = not operation["operationId"].startswith("ops.")
            for status, response in operation["responses"].items():
                names = set(response.get("headers", {}))
                assert ({"RateLimit", "RateLimit-Policy"} <= names) == limited, (
                    operation["operationId"], status)
