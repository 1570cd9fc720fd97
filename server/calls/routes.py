"""REST routes for calls (the Socket.IO side is server/gateway/calls.py)."""

from __future__ import annotations

import time

from aiohttp import web

from protocols.calls import CallView, IceServers
from server.auth.principal import Principal
from server.calls.service import call_key, ice_servers, visible_call
from server.calls.wiring import CALL_STORE
from server.http.endpoint import Endpoints
from server.keys import SETTINGS

api = Endpoints("calls")


@api.get("/v1/calls/ice-servers", name="calls.ice_servers", response=IceServers,
         summary="STUN and TURN servers for WebRTC, with TURN credentials",
         description="TURN credentials follow the TURN REST scheme (coturn "
         "`use-auth-secret`): username `<expiry unix time>:<your user id>`, credential "
         "base64(HMAC-SHA1(TURN_SECRET, username)); valid for `ttl` seconds. Kinds with no "
         "configured URLs are left out.")
async def get_ice_servers(request: web.Request, principal: Principal) -> IceServers:
    return ice_servers(request.app[SETTINGS], principal.user_id, time.time())


@api.get("/v1/calls/{id}", name="calls.get", response=CallView, errors=(404,),
         summary="A call you were invited to: state, participants, timestamps",
         description="404 `call_not_found` unless you were a participant (invited or "
         "caller). Participants' `state` is their outcome once the call ended.")
async def get_call(request: web.Request, principal: Principal) -> CallView:
    key = call_key(request.match_info["id"])
    record = await request.app[CALL_STORE].load(key) if key else None
    return visible_call(record, principal.user_id)
