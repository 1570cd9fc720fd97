"""REST routes for profiles, the social graph, and role administration.

`{id}` is a user id, `@username`, or `me` (the caller). `PATCH /v1/users/me` is a plain
route; for a GET, aiohttp finds no GET on that plain resource and falls through to the
`/v1/users/{id}` pattern, so GET /v1/users/me is `users.get` with id "me".
"""

from __future__ import annotations

from aiohttp import web

from protocols.common import Page, PageQuery
from protocols.users import Me, ProfilePatch, Relationship, RoleChange, UserProfile, UserSummary
from server.auth.principal import Principal
from server.http.endpoint import Endpoints
from server.openapi.generator import USER_REF_PARAMS
from server.users.service import UserService
from server.users.wiring import USER_SERVICE

api = Endpoints("users")
admin_api = Endpoints("admin")

_REF = "`{id}` is a user id, `@username`, or `me`. "
_HIDDEN = "404 also when either of you blocks the other."


def _service(request: web.Request) -> UserService:
    return request.app[USER_SERVICE]


@api.get("/v1/users/{id}", name="users.get", response=UserProfile, etag=True,
         params=USER_REF_PARAMS, summary="A user's profile, with your relation to them",
         description=_REF + _HIDDEN + " The ETag changes with the profile, its counts and "
         "your relation to the user.", errors=(404,))
async def get_user(request: web.Request, principal: Principal) -> UserProfile:
    return await _service(request).profile(principal, request.match_info["id"])


@api.patch("/v1/users/me", name="users.update_me", body=ProfilePatch, response=Me,
           body_rules={"minProperties": 1}, summary="Edit your profile",
           description="Absent fields are kept; `avatar_media_id: null` clears the avatar.")
async def update_me(request: web.Request, principal: Principal, body: ProfilePatch) -> Me:
    return await _service(request).update_me(principal, body)


@api.post("/v1/users/{id}/follow", name="users.follow", response=Relationship,
          params=USER_REF_PARAMS,
          summary="Follow a user (idempotent)", errors=(404, 409, 422),
          description=_REF + "409 `blocked` while you block them; 422 `self_action` for "
          "yourself; " + _HIDDEN)
async def follow(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).follow(principal, request.match_info["id"])


@api.delete("/v1/users/{id}/follow", name="users.unfollow", response=Relationship,
            params=USER_REF_PARAMS,
            summary="Stop following a user (idempotent)", errors=(404, 422),
            description=_REF)
async def unfollow(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).unfollow(principal, request.match_info["id"])


@api.get("/v1/users/{id}/followers", name="users.followers", query=PageQuery,
         params=USER_REF_PARAMS,
         response=Page[UserSummary], summary="Who follows a user, newest first",
         errors=(404,), description=_REF + "Users hidden from you by a block are left out; "
         + _HIDDEN)
async def followers(request: web.Request, principal: Principal,
                    query: PageQuery) -> Page[UserSummary]:
    return await _service(request).followers(principal, request.match_info["id"], query)


@api.get("/v1/users/{id}/following", name="users.following", query=PageQuery,
         params=USER_REF_PARAMS,
         response=Page[UserSummary], summary="Whom a user follows, newest first",
         errors=(404,), description=_REF + "Users hidden from you by a block are left out; "
         + _HIDDEN)
async def following(request: web.Request, principal: Principal,
                    query: PageQuery) -> Page[UserSummary]:
    return await _service(request).following(principal, request.match_info["id"], query)


@api.post("/v1/users/{id}/block", name="users.block", response=Relationship,
          params=USER_REF_PARAMS,
          summary="Block a user (idempotent); removes follows both ways", errors=(404, 422),
          description=_REF + "Each of you then sees the other as not found.")
async def block(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).block(principal, request.match_info["id"])


@api.delete("/v1/users/{id}/block", name="users.unblock", response=Relationship,
            params=USER_REF_PARAMS,
            summary="Unblock a user (idempotent)", errors=(404, 422), description=_REF)
async def unblock(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).unblock(principal, request.match_info["id"])


@api.post("/v1/users/{id}/mute", name="users.mute", response=Relationship, params=USER_REF_PARAMS,
          summary="Mute a user (idempotent)", errors=(404, 422), description=_REF)
async def mute(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).mute(principal, request.match_info["id"])


@api.delete("/v1/users/{id}/mute", name="users.unmute", response=Relationship,
            params=USER_REF_PARAMS,
            summary="Unmute a user (idempotent)", errors=(404, 422), description=_REF)
async def unmute(request: web.Request, principal: Principal) -> Relationship:
    return await _service(request).unmute(principal, request.match_info["id"])


@admin_api.put("/v1/admin/users/{id}/role", name="admin.set_role", body=RoleChange,
               params=USER_REF_PARAMS,
               response=UserProfile, roles=frozenset({"admin"}), errors=(403, 404, 409),
               summary="Set a user's role (admins only)",
               description=_REF + "409 `last_admin` when it would leave no admin. Takes "
               "effect in the user's next access token.")
async def set_role(request: web.Request, principal: Principal, body: RoleChange) -> UserProfile:
    return await _service(request).set_role(principal, request.match_info["id"], body.role)
