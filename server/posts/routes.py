"""REST routes for posts, replies, reposts, likes, comments and metrics, and the two post
views under /v1/users (a user's posts, a user's stats).

`{id}` of a post is its id; a post the caller may not see (missing, deleted, or a block either
way with its author) is a 404 `post_not_found`. Likes, comments, reposts and replies aimed at
a repost go to its original.
"""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
from aiohttp import web

from protocols.common import Page, PageQuery
from protocols.posts import (
    MAX_MEDIA_PER_POST,
    MAX_POST_CHARS,
    Comment,
    CommentCreate,
    LikeState,
    Post,
    PostCreate,
    PostMetrics,
    PostSearch,
    UserStats,
)
from protocols.users import UserSummary
from server.analytics.wiring import extend_user_stats
from server.auth.principal import Principal
from server.http.endpoint import Endpoints, decode_json, encode_result, invalid_fields, read_body
from server.http.idempotency import Idempotency, IdempotentResult, fingerprint
from server.http.problems import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from server.keys import SETTINGS
from server.media.multipart import BINARY, MULTIPART, Upload, read_images
from server.media.service import MediaService, PreparedMedia
from server.media.wiring import MEDIA_SERVICE
from server.openapi.generator import (
    ID_PARAMS,
    JSON,
    USER_REF_PARAMS,
    USER_REF_SCHEMA,
    form_schema,
)
from server.posts.engagement import EngagementService
from server.posts.service import PostService
from server.posts.wiring import ENGAGEMENT_SERVICE, POST_SERVICE

api = Endpoints("posts")

_HIDDEN = "404 `post_not_found` when the post is missing, deleted or hidden from you by a block."
_ORIGINAL = " Aimed at a repost, it applies to the original."


def _posts(request: web.Request) -> PostService:
    return request.app[POST_SERVICE]


def _engagement(request: web.Request) -> EngagementService:
    return request.app[ENGAGEMENT_SERVICE]


@api.post("/v1/posts", name="posts.create", response=Post, status=201, rate_limit=10,
          content_types=(JSON, MULTIPART), json_body=PostCreate, idempotent=True,
          errors=(400, 409, 413, 415, 422, 429),
          summary="Create a post, reply or quote (JSON, or multipart with images)",
          description="JSON body (PostCreate): {text (1-500 chars), media_ids (at most 10 of "
          "your ready uploads), reply_to_id?, quote_of_id?}; or multipart/form-data with "
          "`text` (and optionally `reply_to_id`, `quote_of_id`) and up to 10 image `files` "
          "(validated as POST /v1/media; an 11th file is 422 `too_many_files`). `@username` "
          "mentions notify those users. 429 `daily_limit` (with Retry-After) when you have "
          "created POSTS_PER_DAY posts in the last 24 hours; 422 `reply_not_found` / "
          "`quote_not_found` when the referenced post is not available to you, "
          "`invalid_media` for an upload that is not yours, not ready or already used. Send "
          "`Idempotency-Key` to make retries safe: the same key returns the first result "
          "(`Idempotent-Replayed: true`) and creates nothing; reusing it for another request "
          "is 422 `idempotency_key_reused`; while the first runs, 409 "
          "`idempotency_in_progress`.")
@form_schema({"text": {"type": "string", "minLength": 1, "maxLength": MAX_POST_CHARS},
              "reply_to_id": {"type": "string"}, "quote_of_id": {"type": "string"},
              "files": {"type": "array", "items": BINARY, "maxItems": MAX_MEDIA_PER_POST}},
             required=["text"])
async def create_post(request: web.Request, principal: Principal) -> web.Response:
    if request.content_type == MULTIPART:
        return await _create_with_files(request, principal)
    body = await _json_body(request)
    idem = Idempotency.from_request(request, user_id=principal.user_id, scope=_CREATE_SCOPE,
                                    fingerprint=fingerprint("json", _encoder.encode(body)))
    if (stored := await idem.lookup()) is not None:
        return await _respond(request, principal, stored)
    result = await idem.run(201, lambda conn: _posts(request).create(principal, body, tx=conn))
    return await _respond(request, principal, result)


async def _create_with_files(request: web.Request, principal: Principal) -> web.Response:
    fields, files = await read_images(request, max_files=MAX_MEDIA_PER_POST,
                                      file_field="files")
    try:
        body = msgspec.convert(fields, PostCreate)
    except msgspec.ValidationError as exc:
        raise invalid_fields("The form", fields, PostCreate, exc) from None
    idem = Idempotency.from_request(
        request, user_id=principal.user_id, scope=_CREATE_SCOPE,
        fingerprint=fingerprint("multipart", _encoder.encode(body), *(f.data for f in files)))
    if (stored := await idem.lookup()) is not None:
        return await _respond(request, principal, stored)
    media = request.app[MEDIA_SERVICE]
    prepared = await _prepare_all(media, principal.user_id, files)

    async def write(conn: asyncpg.Connection) -> Post:
        uploaded = [await media.commit(item, conn=conn) for item in prepared]
        with_media = msgspec.structs.replace(body, media_ids=[m.id for m in uploaded])
        post = await _posts(request).create(principal, with_media, tx=conn)
        # Inside the transaction the media service cannot see the attachment yet.
        return msgspec.structs.replace(post, media=uploaded)

    try:
        result = await idem.run(201, write)
    except BaseException:
        await _discard_all(media, prepared)
        raise
    if result.replayed:  # a concurrent duplicate committed first: our uploads are surplus
        await _discard_all(media, prepared)
    return await _respond(request, principal, result)


@api.get("/v1/posts", name="posts.search", query=PostSearch, response=Page[Post],
         params={"author": USER_REF_SCHEMA}, summary="Search and filter posts, newest first",
         description="Filters: author (id or @username), since (inclusive) / until "
         "(exclusive) as RFC 3339 times, has_media, q (full text, web-search syntax). Reposts "
         "are not listed; posts of users you mute only when you filter by that author.")
async def search_posts(request: web.Request, principal: Principal,
                       query: PostSearch) -> Page[Post]:
    return await _posts(request).search(principal, query)


@api.get("/v1/posts/{id}", name="posts.get", response=Post, errors=(404,), etag=True,
         params=ID_PARAMS, summary="A post",
         description=_HIDDEN + " Counts a view unless you wrote it (a 304 too). The ETag "
         "changes with the post's counters and your likes and reposts.")
async def get_post(request: web.Request, principal: Principal) -> Post:
    return await _posts(request).get(principal, request.match_info["id"])


@api.delete("/v1/posts/{id}", name="posts.delete", status=204, errors=(403, 404), params=ID_PARAMS,
            summary="Delete a post (its author, a moderator or an admin)",
            description="403 `not_author` for anyone else. " + _HIDDEN)
async def delete_post(request: web.Request, principal: Principal) -> None:
    await _posts(request).delete(principal, request.match_info["id"])


@api.get("/v1/posts/{id}/replies", name="posts.replies", query=PageQuery, params=ID_PARAMS,
         response=Page[Post], errors=(404,), summary="Replies to a post, oldest first",
         description=_HIDDEN + _ORIGINAL)
async def replies(request: web.Request, principal: Principal, query: PageQuery) -> Page[Post]:
    return await _posts(request).replies(principal, request.match_info["id"], query)


@api.post("/v1/posts/{id}/like", name="posts.like", response=LikeState,
          errors=(404,), params=ID_PARAMS,
          summary="Like a post (idempotent)", description=_HIDDEN + _ORIGINAL)
async def like(request: web.Request, principal: Principal) -> LikeState:
    return await _engagement(request).like(principal, request.match_info["id"])


@api.delete("/v1/posts/{id}/like", name="posts.unlike", response=LikeState,
            errors=(404,), params=ID_PARAMS,
            summary="Take back a like (idempotent)", description=_HIDDEN + _ORIGINAL)
async def unlike(request: web.Request, principal: Principal) -> LikeState:
    return await _engagement(request).unlike(principal, request.match_info["id"])


@api.get("/v1/posts/{id}/likes", name="posts.likes", query=PageQuery, params=ID_PARAMS,
         response=Page[UserSummary], errors=(404,), summary="Who liked a post, newest first",
         description=_HIDDEN + _ORIGINAL)
async def likes(request: web.Request, principal: Principal,
                query: PageQuery) -> Page[UserSummary]:
    return await _engagement(request).likers(principal, request.match_info["id"], query)


@api.post("/v1/posts/{id}/repost", name="posts.repost", response=Post, status=201,
          other_statuses=(200,), errors=(404,), params=ID_PARAMS,
          summary="Repost a post (idempotent)",
          description="201 with the new repost; 200 with your existing repost when you have "
          "reposted it already. " + _HIDDEN + _ORIGINAL)
async def repost(request: web.Request, principal: Principal) -> web.StreamResponse:
    post, created = await _posts(request).repost(principal, request.match_info["id"])
    return encode_result(post, 201 if created else 200)


@api.delete("/v1/posts/{id}/repost", name="posts.unrepost", status=204,
            errors=(404,), params=ID_PARAMS,
            summary="Undo your repost of a post (idempotent)",
            description="Also when the original has been deleted since." + _ORIGINAL)
async def unrepost(request: web.Request, principal: Principal) -> None:
    await _posts(request).unrepost(principal, request.match_info["id"])


@api.post("/v1/posts/{id}/comments", name="posts.comment", body=CommentCreate, params=ID_PARAMS,
          response=Comment, status=201, errors=(404,), summary="Comment on a post",
          description="text: 1-500 characters. " + _HIDDEN + _ORIGINAL)
async def comment(request: web.Request, principal: Principal, body: CommentCreate) -> Comment:
    return await _engagement(request).comment(principal, request.match_info["id"], body)


@api.get("/v1/posts/{id}/comments", name="posts.comments", query=PageQuery, params=ID_PARAMS,
         response=Page[Comment], errors=(404,), summary="Comments on a post, oldest first",
         description=_HIDDEN + _ORIGINAL)
async def comments(request: web.Request, principal: Principal,
                   query: PageQuery) -> Page[Comment]:
    return await _engagement(request).comments(principal, request.match_info["id"], query)


@api.get("/v1/posts/{id}/metrics", name="posts.metrics", response=PostMetrics,
         errors=(404,), params=ID_PARAMS,
         summary="A post's counters: likes, comments, reposts, quotes, replies, views",
         description=_HIDDEN + _ORIGINAL)
async def metrics(request: web.Request, principal: Principal) -> PostMetrics:
    return await _posts(request).metrics(principal, request.match_info["id"])


_USER_REF = "`{id}` is a user id, `@username`, or `me`; 404 also when either of you blocks " \
    "the other."


@api.get("/v1/users/{id}/posts", name="posts.by_user", query=PageQuery,
         response=Page[Post], params=USER_REF_PARAMS,
         errors=(404,), summary="A user's posts and reposts, newest first",
         description=_USER_REF)
async def by_user(request: web.Request, principal: Principal, query: PageQuery) -> Page[Post]:
    return await _posts(request).by_user(principal, request.match_info["id"], query)


@api.get("/v1/users/{id}/stats", name="posts.user_stats", response=UserStats,
         errors=(404,), params=USER_REF_PARAMS,
         summary="A user's counts: followers, following, posts, likes received, ...",
         description=_USER_REF)
async def user_stats(request: web.Request, principal: Principal) -> UserStats:
    stats = await _posts(request).user_stats(principal, request.match_info["id"])
    return await extend_user_stats(request.app, stats)  # analytics' added fields


# Creation helpers

_CREATE_SCOPE = "posts.create"
_create_decoder = msgspec.json.Decoder(PostCreate)
_encoder = msgspec.json.Encoder()


async def _json_body(request: web.Request) -> PostCreate:
    """The JSON body, with the checks Endpoints applies to typed bodies (this route also takes
    multipart, so it decodes for itself)."""
    limit = request.app[SETTINGS].max_json_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    if request.content_type != JSON:
        raise UnsupportedMediaType(f"Send the post as {JSON} or {MULTIPART}")
    raw = await read_body(request, limit)
    if not raw.strip():
        raise BadRequest("A JSON body is required")
    return decode_json(raw, _create_decoder, PostCreate)


async def _prepare_all(media: MediaService, owner_id: str,
                       files: list[Upload]) -> list[PreparedMedia]:
    """Validate and store every file's blobs; all or nothing (the first problem is raised)."""
    results = await asyncio.gather(
        *(media.prepare(owner_id, f.data, f.content_type) for f in files),
        return_exceptions=True)
    prepared = [r for r in results if isinstance(r, PreparedMedia)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        await _discard_all(media, prepared)
        raise failed[0]
    return prepared


async def _discard_all(media: MediaService, prepared: list[PreparedMedia]) -> None:
    for item in prepared:
        await media.discard(item)


async def _respond(request: web.Request, principal: Principal,
                   result: IdempotentResult) -> web.Response:
    """The created post as committed, re-read so its media (and their URLs, which expire) are
    current; the stored result when it can no longer be read (deleted since)."""
    post_id = result.body.get("id") if isinstance(result.body, dict) else None
    fresh = await _posts(request).read(principal, post_id) if post_id else None
    return result.response(body=fresh) if fresh is not None else result.response()
