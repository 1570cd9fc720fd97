"""REST routes for the home and popular feeds."""

from __future__ import annotations

from aiohttp import web

from protocols.common import Page, PageQuery
from protocols.feed import HomeFeed
from protocols.posts import Post
from server.auth.principal import Principal
from server.feed.service import FeedService
from server.feed.wiring import FEED_SERVICE
from server.http.endpoint import Endpoints, encode_result

api = Endpoints("feed")
# Set (to "feed") on a home feed page answered from the popular ranking; `degraded` in the body.
DEGRADED_HEADER = "Hubbub-Degraded"


def _service(request: web.Request) -> FeedService:
    return request.app[FEED_SERVICE]


@api.get("/v1/feed", name="feed.home", query=PageQuery, response=HomeFeed,
         summary="Your home feed, newest first", errors=(400, 503),
         description="Your own posts and reposts, and those of the users you follow (their "
         "replies excepted), newest first. Posts by users you block, are blocked by or mute "
         "are left out, and so are deleted posts; unfollowing takes effect at once. Pages "
         "do not shift when new posts arrive. A page may hold fewer than `limit` items while "
         "`next_cursor` is set: keep following it. While the home feed's stores are failing, "
         "the answer is the popular feed instead, with `degraded: true` and the header "
         "`Hubbub-Degraded: feed` (its `next_cursor` pages on through the popular ranking; a "
         "request without a cursor tries the home feed again); 503 `unavailable` with "
         "`Retry-After` when the popular ranking cannot be had either.")
async def home(request: web.Request, principal: Principal,
               query: PageQuery) -> HomeFeed | web.StreamResponse:
    page = await _service(request).home(principal.user_id, query)
    if not page.degraded:
        return page
    response = encode_result(page, 200)
    response.headers[DEGRADED_HEADER] = "feed"
    return response


@api.get("/v1/feed/popular", name="feed.popular", query=PageQuery, response=Page[Post],
         summary="Popular posts right now", errors=(400,),
         description="Posts ranked by recent engagement (likes, comments, reposts and quotes "
         "of the last hours, recent ones weighing more), refreshed every few seconds. Users "
         "you block, are blocked by or mute are left out.")
async def popular(request: web.Request, principal: Principal, query: PageQuery) -> Page[Post]:
    return await _service(request).popular(principal.user_id, query)
