"""REST routes for the caller's notifications."""

from __future__ import annotations

from aiohttp import web

from protocols.common import Page, PageQuery
from protocols.notifications import MarkedRead, MarkRead, Notification, UnreadCount
from server.auth.principal import Principal
from server.http.endpoint import Endpoints
from server.notifications.service import NotificationService
from server.notifications.wiring import NOTIFICATION_SERVICE

api = Endpoints("notifications")


def _service(request: web.Request) -> NotificationService:
    return request.app[NOTIFICATION_SERVICE]


@api.get("/v1/notifications", name="notifications.list", query=PageQuery,
         response=Page[Notification], summary="Your notifications, newest first",
         errors=(400,),
         description="The returned items become read; each item's `read` is its state "
         "before this request. Notifications from users you block, are blocked by or mute, "
         "and about deleted posts, are left out.")
async def list_notifications(request: web.Request, principal: Principal,
                             query: PageQuery) -> Page[Notification]:
    return await _service(request).list(principal.user_id, query)


@api.get("/v1/notifications/unread_count", name="notifications.unread_count",
         response=UnreadCount, summary="How many of your notifications are unread")
async def unread_count(request: web.Request, principal: Principal) -> UnreadCount:
    return await _service(request).unread_count(principal.user_id)


@api.post("/v1/notifications/read", name="notifications.read", body=MarkRead,
          response=MarkedRead, summary="Mark your notifications read up to an id",
          description="Marks every notification with an id <= `up_to_id` read; `count` is "
          "how many this request marked, `unread_count` how many stay unread.")
async def mark_read(request: web.Request, principal: Principal, body: MarkRead) -> MarkedRead:
    return await _service(request).mark_read(principal.user_id, body.up_to_id)
