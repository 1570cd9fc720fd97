"""The composition root: `create_app()` wires config, adapters, areas and middlewares."""

from __future__ import annotations

from aiohttp import web

from server.actors_wiring import setup_actors
from server.analytics.wiring import setup_analytics
from server.auth.wiring import setup_auth
from server.calls.wiring import setup_calls
from server.chat.wiring import setup_chat
from server.cluster.wiring import setup_cluster
from server.config import Settings
from server.events.wiring import setup_events
from server.feed.wiring import setup_feed
from server.gateway.setup import setup_gateway
from server.http.cors import CorsPolicy, cors_middleware
from server.http.middleware import http_only, problem_details, request_context, security_headers
from server.keys import ENDPOINTS, LIFECYCLE, SETTINGS
from server.lifecycle import Lifecycle
from server.media.wiring import setup_media
from server.metrics import metrics_middleware, setup_metrics
from server.notifications.wiring import setup_notifications
from server.openapi.wiring import setup_openapi
from server.ops.routes import api as ops_api
from server.posts.wiring import setup_posts
from server.publishing.wiring import setup_publishing
from server.ratelimit.wiring import rate_limit_middleware, setup_ratelimit
from server.resources import database_ctx, redis_ctx
from server.scheduling.wiring import setup_scheduling
from server.users.wiring import setup_users
from server.web_client import setup_web_client

# Multipart media uploads (issue 3) need more than JSON bodies; each endpoint enforces its own
# smaller limit, this is only the ceiling aiohttp applies to any request body it reads.
_MAX_REQUEST_BYTES = 110 * 1024 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # CORS outside the error middleware: problem responses get its headers too. None of
        # them sees Socket.IO's requests (server/gateway/endpoint.py).
        middlewares=[http_only(m) for m in (
            request_context, metrics_middleware,
            cors_middleware(CorsPolicy.from_settings(settings)), problem_details,
            rate_limit_middleware)],
        client_max_size=_MAX_REQUEST_BYTES,
    )
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app[LIFECYCLE] = Lifecycle(node_id=settings.effective_node_id)
    app[ENDPOINTS] = []

    # Resources, in dependency order; torn down in reverse.
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(redis_ctx)

    setup_metrics(app)
    # Before every area that registers actor kinds; stopped after the areas' contexts.
    setup_actors(app)
    setup_events(app)  # before the areas: they subscribe consumers to app[EVENT_BUS]
    setup_ratelimit(app)
    setup_auth(app)
    setup_users(app)
    setup_media(app)  # before posts: they call app[MEDIA_SERVICE]
    setup_posts(app)
    setup_feed(app)
    setup_notifications(app)
    setup_analytics(app)  # after posts: it adds a sink to the posts' view counter
    setup_publishing(app)  # before scheduling: its publishers are in before the scheduler starts
    setup_scheduling(app)  # after posts and notifications: it publishes through the posts service
    setup_gateway(app)
    setup_chat(app)  # after actors and gateway: RoomActor uses the gateway's ports
    setup_calls(app)  # after chat: calls read the chat area's rooms
    setup_cluster(app)  # after the areas: it wakes and cleans up after their actors
    ops_api.register(app)
    setup_web_client(app)  # / and /app/...: the browser client
    setup_openapi(app)  # last: it documents every endpoint registered above

    async def start_draining(app: web.Application) -> None:
        app[LIFECYCLE].draining = True

    app.on_shutdown.append(start_draining)
    return app
