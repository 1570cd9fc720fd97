"""The `hubbub` Publisher: a scheduled post becomes a Hubbub post through the normal path
(server.posts.service.PostService.create: limits, media claims, mentions, the post.created
event that drives feed fan-out and notifications).

At most once per (scheduled post, target): the create runs under the Idempotency-Key
machinery of POST /v1/posts (server.http.idempotency), keyed by
`PublishRequest.idempotency_key` in a scope of its own. The post and the stored result commit
in one transaction, so a retry after any failure (this node died after the commit, a lease
ran out and another node took over) finds the stored result and returns the same post.
"""

from __future__ import annotations

import asyncpg

from protocols.posts import PostCreate
from protocols.publishing import PublishFailed, PublishRequest, PublishResult, TargetKind
from server.auth.principal import Principal
from server.http.idempotency import Idempotency, fingerprint
from server.http.problems import Conflict, ProblemError, RateLimited
from server.posts.service import PostService

SCOPE = "scheduling.publish"
# Longer than any scheduled post can wait for a retry, dead-letter retries included.
RESULT_TTL = 400 * 24 * 3600.0
# The scheduler acts for the author; it has no token of theirs.
_TOKEN_ID = "scheduler"


class HubbubPublisher:
    kind: TargetKind = "hubbub"

    def __init__(self, pool: asyncpg.Pool, posts: PostService) -> None:
        self._pool = pool
        self._posts = posts

    async def publish(self, request: PublishRequest) -> PublishResult:
        author = Principal(user_id=request.author_id, role="user", token_id=_TOKEN_ID,
                           expires_at=0)
        body = PostCreate(text=request.text, media_ids=list(request.media_ids))
        idem = Idempotency(self._pool, user_id=request.author_id, scope=SCOPE,
                           key=request.idempotency_key,
                           fingerprint=fingerprint(request.idempotency_key), ttl=RESULT_TTL)
        try:
            result = await idem.run(201, lambda conn: self._posts.create(author, body,
                                                                           tx=conn))
        except RateLimited as limited:  # the author's POSTS_PER_DAY: wait for the window
            raise PublishFailed(limited.code, limited.detail or "daily limit reached",
                                permanent=False, retry_after=float(limited.retry_after)
                                ) from None
        except Conflict as conflict:  # idempotency_in_progress: another node is on it
            raise PublishFailed(conflict.code, conflict.detail or "in progress",
                                permanent=False) from None
        except ProblemError as problem:  # 4xx: invalid media, ... retrying cannot help
            raise PublishFailed(problem.code, problem.detail or problem.title,
                                permanent=not problem.temporary) from None
        post_id = str(result.body["id"])
        return PublishResult(external_id=post_id, url=f"/v1/posts/{post_id}")
