"""Wire the posts area into the app: routes, services over the shared pool, the view counter.

`POST_READER` is the hydration other areas use (the feed): ids plus a viewer -> `Post`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import DB_POOL, SETTINGS
from server.media.wiring import MEDIA_SERVICE
from server.posts.engagement import EngagementService
from server.posts.reader import PostReader
from server.posts.service import PostService
from server.posts.views import ViewCounter
from server.users.wiring import USER_SERVICE
from storage.postgres.comments import PostgresCommentStore
from storage.postgres.likes import PostgresLikeStore
from storage.postgres.post_lists import PostgresPostIndex
from storage.postgres.post_rows import PostgresPostRows
from storage.postgres.posts import PostgresPostStore

POST_SERVICE = web.AppKey("post_service", PostService)
ENGAGEMENT_SERVICE = web.AppKey("engagement_service", EngagementService)
POST_READER = web.AppKey("post_reader", PostReader)
VIEW_COUNTER = web.AppKey("view_counter", ViewCounter)

VIEW_FLUSH_SECONDS = 1.0


async def posts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the services once the pool and the media service exist (after database_ctx,
    users_ctx and media_ctx); run the
    view counter's flush task while the app runs and flush it one last time on the way out."""
    pool = app[DB_POOL]
    media = app[MEDIA_SERVICE]
    posts = PostgresPostStore(pool, claim_media=media.claim_for_post)
    reader = PostReader(PostgresPostRows(pool), media=media.media_for_posts)
    views = ViewCounter(posts, interval=VIEW_FLUSH_SECONDS)
    app[POST_READER] = reader
    app[VIEW_COUNTER] = views
    app[POST_SERVICE] = PostService(
        posts=posts, index=PostgresPostIndex(pool), reader=reader, users=app[USER_SERVICE],
        views=views, daily_limit=app[SETTINGS].posts_per_day)
    app[ENGAGEMENT_SERVICE] = EngagementService(
        posts=posts, likes=PostgresLikeStore(pool), comments=PostgresCommentStore(pool))
    views.start()
    try:
        yield
    finally:
        await views.stop()


def setup_posts(app: web.Application) -> None:
    # Imported here: the route handlers look the services up under the keys above.
    from server.posts.routes import api

    api.register(app)
    app.cleanup_ctx.append(posts_ctx)
