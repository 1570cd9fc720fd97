"""REST routes for scheduled posts and their dead-letter queue (../shared/API.md,
"Scheduling").

`{id}` is a scheduled post of the caller's; anyone else's, or no such post, is a 404
`scheduled_post_not_found`.
"""

from __future__ import annotations

from aiohttp import web

from protocols.common import Page, PageQuery
from protocols.scheduling import (
    DeadLetter,
    PublishAttempt,
    ScheduledPost,
    ScheduledPostCreate,
    ScheduledPostQuery,
    ScheduledPostUpdate,
)
from server.auth.principal import Principal
from server.http.endpoint import Endpoints
from server.scheduling.keys import SCHEDULE_SERVICE
from server.scheduling.service import ScheduleService

api = Endpoints("scheduling")

_MINE = "404 `scheduled_post_not_found` when it is not one of your scheduled posts."
_TIME = (
    "`scheduled_for` is an instant with an offset (`2026-03-08T14:30:00+01:00`, `...Z`) or a "
    "wall time without one (`2026-03-08T02:30:00`) read in the IANA `timezone` (required "
    "then). A wall time a daylight-saving change skips is moved forward by the gap "
    "(`nonexistent`: `shift_forward`, the default, or `reject`); one it repeats is its first "
    "occurrence (`ambiguous`: `earlier`, the default, `later`, or `reject`); the response's "
    "`resolution` says which happened (`exact`, `shifted_forward`, `earlier_of_two`, "
    "`later_of_two`) and `local_time` shows the wall time used. 422: `time_in_past`, "
    "`too_far_ahead` (more than 366 days), `timezone_required`, `unknown_timezone`, "
    "`nonexistent_local_time`, `ambiguous_local_time`, `invalid_media`; targets: "
    "`unsupported_target`, `invalid_target`, `connection_required`, `duplicate_target`, "
    "`unknown_connection`. 409 when a scheduling rule refuses the time, with `code` "
    "`schedule_pending_limit` (SCHEDULE_MAX_PENDING posts already wait), "
    "`schedule_min_interval` (another post closer than SCHEDULE_MIN_INTERVAL_SECONDS), "
    "`schedule_hourly_limit` / `schedule_daily_limit` (SCHEDULE_MAX_PER_HOUR / "
    "SCHEDULE_MAX_PER_DAY in a rolling hour / 24 h), and `next_free_slot`: the earliest time "
    "no rule refuses.")


def _service(request: web.Request) -> ScheduleService:
    return request.app[SCHEDULE_SERVICE]


@api.post("/v1/scheduled_posts", name="scheduling.create", body=ScheduledPostCreate,
          response=ScheduledPost, status=201, errors=(409, 422),
          summary="Schedule a post (to Hubbub and/or your connected accounts)",
          description="Body: {text, media_ids (your ready uploads, attached when published), "
          "scheduled_for, timezone, priority (urgent|high|normal|low: the order in which due "
          "posts are taken under load), targets (default [{kind: hubbub}]; webhook and x "
          "targets name a connection_id), nonexistent, ambiguous}. " + _TIME)
async def create(request: web.Request, principal: Principal,
                 body: ScheduledPostCreate) -> ScheduledPost:
    return await _service(request).create(principal, body)


@api.get("/v1/scheduled_posts", name="scheduling.list", query=ScheduledPostQuery,
         response=Page[ScheduledPost], summary="Your scheduled posts, soonest first",
         description="Filters: status (scheduled|publishing|published|failed|cancelled), "
         "from (inclusive) and to (exclusive) on scheduled_for, as RFC 3339 times.")
async def list_posts(request: web.Request, principal: Principal,
                     query: ScheduledPostQuery) -> Page[ScheduledPost]:
    return await _service(request).list(principal, query)


# Before /{id}: aiohttp matches routes in the order they were added.
@api.get("/v1/scheduled_posts/dead_letters", name="scheduling.dead_letters", query=PageQuery,
         response=Page[DeadLetter], summary="Your failed scheduled posts (dead-letter queue)",
         description="Most recently failed first, each with every publish attempt (time, "
         "target, outcome, error). POST .../{id}/retry publishes the failed targets again; "
         "DELETE .../{id} cancels.")
async def dead_letters(request: web.Request, principal: Principal,
                       query: PageQuery) -> Page[DeadLetter]:
    return await _service(request).dead_letters(principal, query)


@api.get("/v1/scheduled_posts/{id}", name="scheduling.get", response=ScheduledPost,
         errors=(404,), summary="A scheduled post", description=_MINE)
async def get(request: web.Request, principal: Principal) -> ScheduledPost:
    return await _service(request).get(principal, request.match_info["id"])


@api.patch("/v1/scheduled_posts/{id}", name="scheduling.update", body=ScheduledPostUpdate,
           response=ScheduledPost, errors=(404, 409, 422),
           summary="Edit or reschedule a scheduled post",
           description="Only while `scheduled` (409 `not_editable` after that). Fields left "
          "out stay; a new `timezone` alone re-reads the wall time in that zone. A new time is "
          "checked like a new post's (rules included, the post itself left out). " + _TIME
          + " " + _MINE)
async def update(request: web.Request, principal: Principal,
                 body: ScheduledPostUpdate) -> ScheduledPost:
    return await _service(request).update(principal, request.match_info["id"], body)


@api.delete("/v1/scheduled_posts/{id}", name="scheduling.cancel", response=ScheduledPost,
            errors=(404, 409), summary="Cancel a scheduled post",
            description="Answers the cancelled post. Allowed while scheduled, failed (a dead "
            "letter), or publishing while it only waits for a retry; 409 "
            "`publishing_in_progress` while a node is publishing it, `not_cancellable` once "
            "published or cancelled. Targets already published stay published. " + _MINE)
async def cancel(request: web.Request, principal: Principal) -> ScheduledPost:
    return await _service(request).cancel(principal, request.match_info["id"])


@api.post("/v1/scheduled_posts/{id}/publish", name="scheduling.publish_now",
          response=ScheduledPost, status=202, errors=(404, 409),
          summary="Publish a scheduled post now",
          description="Makes it due now (scheduled_for becomes now); a scheduler takes it at "
          "once. 409 `not_publishable` unless scheduled. " + _MINE)
async def publish_now(request: web.Request, principal: Principal) -> ScheduledPost:
    return await _service(request).publish_now(principal, request.match_info["id"])


@api.post("/v1/scheduled_posts/{id}/retry", name="scheduling.retry", response=ScheduledPost,
          status=202, errors=(404, 409), summary="Retry a failed scheduled post",
          description="Its failed targets go back to pending with a fresh set of "
          "SCHEDULE_MAX_ATTEMPTS tries, starting now; published targets are not repeated. "
          "409 `not_retryable` unless failed. " + _MINE)
async def retry(request: web.Request, principal: Principal) -> ScheduledPost:
    return await _service(request).retry(principal, request.match_info["id"])


@api.get("/v1/scheduled_posts/{id}/attempts", name="scheduling.attempts",
         response=Page[PublishAttempt], errors=(404,),
         summary="Every publish attempt of a scheduled post, oldest first",
         description="One page holds them all (next_cursor is null). " + _MINE)
async def attempts(request: web.Request, principal: Principal) -> Page[PublishAttempt]:
    items = await _service(request).attempts(principal, request.match_info["id"])
    return Page(items=items)
