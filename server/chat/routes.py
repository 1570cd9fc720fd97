"""REST routes for chat rooms and their history (the Socket.IO side is server/gateway)."""

from __future__ import annotations

from aiohttp import web

from protocols.chat import HistoryQuery, MembersChange, Message, MessageSend, Room, RoomCreate
from protocols.common import Page, PageQuery
from server.auth.principal import Principal
from server.chat.service import ChatService
from server.chat.wiring import CHAT_SERVICE
from server.http.endpoint import Endpoints, encode_result
from server.http.idempotency import Idempotency, fingerprint

api = Endpoints("chat")

_MEMBERS_ONLY = "404 `room_not_found` unless you are a member. "


def _service(request: web.Request) -> ChatService:
    return request.app[CHAT_SERVICE]


@api.post("/v1/rooms", name="chat.create_room", body=RoomCreate, response=Room, status=201,
          errors=(403, 404, 422), summary="Create a room (a direct room is never duplicated)",
          description="You are always a member. `direct`: exactly one other member; when the "
          "two of you already have a direct room it is returned with 200 instead of a new one "
          "with 201. `group`: you are its owner. Unknown user ids are 422; a user you block "
          "or who blocks you is 404 `user_not_found`; a block between two others who would "
          "share the room is 403 `blocked_member`.")
async def create_room(request: web.Request, principal: Principal,
                      body: RoomCreate) -> web.StreamResponse:
    room, created = await _service(request).create_room(principal, body)
    return encode_result(room, 201 if created else 200)


@api.get("/v1/rooms", name="chat.rooms", query=PageQuery, response=Page[Room],
         summary="Your rooms, most recent activity first",
         description="Each with its last message and your unread count (messages after your "
         "read position; sending a message reads everything before it).")
async def list_rooms(request: web.Request, principal: Principal,
                     query: PageQuery) -> Page[Room]:
    return await _service(request).rooms(principal, query)


@api.get("/v1/rooms/{id}", name="chat.room", response=Room, errors=(404,),
         summary="A room you are a member of", description=_MEMBERS_ONLY)
async def get_room(request: web.Request, principal: Principal) -> Room:
    return await _service(request).room(principal, request.match_info["id"])


@api.post("/v1/rooms/{id}/members", name="chat.add_members", body=MembersChange,
          response=Room, errors=(403, 404, 409, 422), summary="Add members to a group",
          description=_MEMBERS_ONLY + "Only the owner adds (403 `not_owner`); direct rooms "
          "are 409 `direct_room`. Users already in the room are left as they are.")
async def add_members(request: web.Request, principal: Principal, body: MembersChange) -> Room:
    return await _service(request).add_members(principal, request.match_info["id"], body)


@api.delete("/v1/rooms/{id}/members", name="chat.remove_members", body=MembersChange,
            response=None, status=204, errors=(403, 404, 409),
            summary="Remove members from a group, or leave it",
            description=_MEMBERS_ONLY + "Anyone may remove themself; only the owner removes "
            "others (403 `not_owner`). When the owner leaves, the longest-standing member "
            "becomes owner. Direct rooms are 409 `direct_room`.")
async def remove_members(request: web.Request, principal: Principal,
                         body: MembersChange) -> None:
    await _service(request).remove_members(principal, request.match_info["id"], body)


@api.get("/v1/rooms/{id}/messages", name="chat.history", query=HistoryQuery,
         response=Page[Message], errors=(404,), summary="A room's messages, by seq",
         description=_MEMBERS_ONLY + "Items ascend by seq. `after_seq`: the messages after it "
         "(catch up); `before_seq`: those just before it (scroll back); neither: the newest. "
         "`next_cursor` continues in the same direction.")
async def history(request: web.Request, principal: Principal,
                  query: HistoryQuery) -> Page[Message]:
    return await _service(request).history(principal, request.match_info["id"], query)


@api.post("/v1/rooms/{id}/messages", name="chat.send", body=MessageSend, response=Message,
          status=201, errors=(404, 422, 503), summary="Send a message", idempotent=True,
          description=_MEMBERS_ONLY + "Goes through the room like a Socket.IO `message:send`: "
          "it gets the next seq and arrives live as `message:new`. Idempotent per "
          "`client_id` (a resend returns the first message) and per `Idempotency-Key`. 503 "
          "`timeout` / `room_unavailable`: retry with the same client_id.")
async def send_message(request: web.Request, principal: Principal,
                       body: MessageSend) -> web.StreamResponse:
    service, room_id = _service(request), request.match_info["id"]
    idem = Idempotency.from_request(
        request, user_id=principal.user_id, scope="chat.send",
        fingerprint=fingerprint(room_id, body.client_id, body.text))
    if idem.key is None:
        return encode_result(await service.send(principal, room_id, body.text, body.client_id),
                             201)
    if (stored := await idem.lookup()) is not None:
        return stored.response()
    # Not inside idem.run's transaction: the room writes on its own connection, and holding
    # one per waiting request could starve it. client_id already makes the send idempotent;
    # the key then records (or, if a twin request won, replays) the result.
    message = await service.send(principal, room_id, body.text, body.client_id)

    async def recorded(_conn: object) -> Message:
        return message

    return (await idem.run(201, recorded)).response()
