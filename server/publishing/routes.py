"""REST routes for publishing connections (../shared/API.md, "Scheduling":
`GET|POST|DELETE /v1/publishing/connections`). DELETE names the connection in the path."""

from __future__ import annotations

from aiohttp import web

from protocols.common import Page
from protocols.publishing_connections import Connection, ConnectionCreate, ConnectionCreated
from server.auth.principal import Principal
from server.http.endpoint import Endpoints
from server.publishing.keys import CONNECTION_SERVICE
from server.publishing.service import ConnectionService

api = Endpoints("publishing")


def _service(request: web.Request) -> ConnectionService:
    return request.app[CONNECTION_SERVICE]


@api.post("/v1/publishing/connections", name="publishing.connect", body=ConnectionCreate,
          response=ConnectionCreated, status=201, rate_limit=30, errors=(422,),
          summary="Connect an external account or a webhook (a target for scheduled posts)",
          description="`webhook`: {kind, url, label?}; the url must be https (http to "
          "127.0.0.1/localhost only where PUBLISHING_ALLOW_HTTP_LOCALHOST is on). The answer "
          "carries `signing_secret` (`whsec_...`, Standard Webhooks) this once: deliveries "
          "are signed with it. `x`: {kind, access_token (OAuth 2.0 user token with "
          "tweet.write, media.write for images), refresh_token?, expires_at?, "
          "external_user_id?, username?, label?}. Tokens and secrets are stored encrypted and "
          "never shown again. 422: `url_required`, `invalid_url`, `insecure_url`, "
          "`access_token_required`, `invalid_field` (a field of the other kind).")
async def connect(request: web.Request, principal: Principal,
                  body: ConnectionCreate) -> ConnectionCreated:
    return await _service(request).create(principal, body)


@api.get("/v1/publishing/connections", name="publishing.list", response=Page[Connection],
         summary="Your publishing connections, oldest first",
         description="Never with their tokens or secrets. One page holds them all "
         "(next_cursor is null).")
async def list_connections(request: web.Request, principal: Principal) -> Page[Connection]:
    return Page(items=await _service(request).list(principal))


@api.delete("/v1/publishing/connections/{id}", name="publishing.disconnect", status=204,
            errors=(404,), summary="Remove a publishing connection",
            description="Its credentials are deleted. Scheduled posts that still target it "
            "fail that target permanently (`connection_removed`). 404 "
            "`connection_not_found` when it is not one of yours.")
async def disconnect(request: web.Request, principal: Principal) -> None:
    await _service(request).delete(principal, request.match_info["id"])
