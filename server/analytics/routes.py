"""REST routes for analytics: a post's metrics over time (its author only) and the best times
for the caller to post. The stats fields live on `GET /v1/users/{id}/stats` (posts area),
filled in through server.analytics.wiring.extend_user_stats."""

from __future__ import annotations

from aiohttp import web

from protocols.analytics import (
    MAX_RANGE_DAYS,
    AnalyticsQuery,
    BestTimes,
    BestTimesQuery,
    PostAnalytics,
)
from server.analytics.service import AnalyticsService
from server.analytics.wiring import ANALYTICS_SERVICE
from server.auth.principal import Principal
from server.http.endpoint import Endpoints

api = Endpoints("analytics")


def _service(request: web.Request) -> AnalyticsService:
    return request.app[ANALYTICS_SERVICE]


@api.get("/v1/posts/{id}/analytics", name="analytics.post", query=AnalyticsQuery,
         response=PostAnalytics, errors=(404, 422),
         summary="A post's views, likes, comments, reposts and quotes over time (author only)",
         description="Buckets are UTC hours or days, oldest first, empty ones as zeros; the "
         "range is widened to whole buckets. `from` defaults to 7 days before `to`, `to` to "
         f"now; at most {MAX_RANGE_DAYS} days (422 `range_too_large`), `from` before `to` "
         "(422 `invalid_range`). engagement_rate = (likes - unlikes + comments + reposts + "
         "quotes) / views, null without views. 404 `post_not_found` unless you wrote the "
         "post. Counts arrive asynchronously, from the post events, within moments.")
async def post_analytics(request: web.Request, principal: Principal,
                         query: AnalyticsQuery) -> PostAnalytics:
    return await _service(request).post(principal, request.match_info["id"], query)


@api.get("/v1/users/me/best_times", name="analytics.best_times", query=BestTimesQuery,
         response=BestTimes, errors=(422,),
         summary="The best hours of the week for you to post",
         description="From when your followers engaged with your posts and were active in "
         "the last 28 days, as weekday and hour in `timezone` (IANA, default UTC; 422 "
         "`unknown_timezone`), best first, with the evidence behind each slot. score = 2 x "
         "engagements + active_followers.")
async def best_times(request: web.Request, principal: Principal,
                     query: BestTimesQuery) -> BestTimes:
    return await _service(request).best_times(principal, query)
