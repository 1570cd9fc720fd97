"""The fan-out consumer ("feed.fanout"): keeps home timelines in step with posts and follows.

On hubbub.posts:
- post.created: the post goes to its author's own timeline. Unless it is a reply, and the
  author has fewer followers than FEED_PUSH_THRESHOLD, it is also pushed to every follower's
  timeline: follower ids stream from Postgres in keyset batches (FEED_FANOUT_BATCH), one
  pipelined timeline write per batch. Authors at or above the threshold are pulled at read
  time instead (server.feed.service). Replies reach only their author's own timeline: they
  belong to a conversation, not to followers' home feeds.
- post.reposted: the repost (a post of the reposter) is fanned out the same way.
- post.deleted: dropped from the author's own timeline. Reads drop deleted posts anyway
  (hydration), so followers' timelines are left alone; their entries age out.

On hubbub.users:
- follow.created: the new followee's recent posts are merged into the follower's timeline
  (when the followee is pushed at all), so following shows their posts at once.
- follow.deleted (also sent for the follows a block removes): their posts leave the
  follower's timeline, so pages stay full; reads already filter them out.

Every effect is idempotent (adding or removing the same id twice changes nothing), so an
event delivered twice is harmless and no processed_events bookkeeping is needed. Timelines
that are not built are skipped: they are rebuilt from Postgres on their next read.
"""

from __future__ import annotations

import logging
import time

from protocols.events import (
    EVENT_TYPES,
    EventEnvelope,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    PostReposted,
    payload,
)
from server.feed.ports import FollowerSource, TimelineStore

log = logging.getLogger("hubbub.feed.fanout")

CONSUMER = "feed.fanout"
TOPICS = ("hubbub.posts", "hubbub.users")


class FanOut:
    def __init__(self, *, timelines: TimelineStore, followers: FollowerSource,
                 push_threshold: int, batch: int, backfill: int) -> None:
        self._timelines = timelines
        self._followers = followers
        self._push_threshold = push_threshold
        self._batch = batch
        self._backfill = backfill  # posts merged into a timeline on a new follow

    async def handle(self, event: EventEnvelope) -> None:
        """The EventHandler subscribed as CONSUMER to TOPICS."""
        if event.type not in EVENT_TYPES:
            return  # a type this version does not know: nothing for the feed to do
        match payload(event):
            case PostCreated(reply_to_id=None, post_id=post_id, author_id=author_id):
                await self.fan_out(author_id, post_id)
            case PostCreated(post_id=post_id, author_id=author_id):
                await self._timelines.add([author_id], post_id)
            case PostReposted(repost_id=repost_id, user_id=user_id):
                await self.fan_out(user_id, repost_id)
            case PostDeleted(post_id=post_id, author_id=author_id):
                await self._timelines.remove(author_id, [post_id])
            case FollowCreated(follower_id=follower_id, followee_id=followee_id):
                await self._backfill_follow(follower_id, followee_id)
            case FollowDeleted(follower_id=follower_id, followee_id=followee_id):
                posts = await self._followers.recent_posts(followee_id, self._backfill)
                await self._timelines.remove(follower_id, posts)
            case _:
                pass

    async def fan_out(self, author_id: str, post_id: str) -> int:
        """Push post_id to the author's timeline and, for a pushed author, every follower's.
        Returns how many followers' timelines it was pushed to."""
        started = time.monotonic()
        await self._timelines.add([author_id], post_id)
        count = await self._followers.follower_count(author_id)
        pushed = 0
        mode = "pull"
        if count is not None and count < self._push_threshold:
            mode = "push"
            async for batch in self._followers.followers(author_id, self._batch):
                await self._timelines.add(batch, post_id)
                pushed += len(batch)
        log.info("feed fan-out done", extra={
            "post_id": post_id, "author_id": author_id, "mode": mode,
            "followers": count, "pushed": pushed,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 2)})
        return pushed

    async def _backfill_follow(self, follower_id: str, followee_id: str) -> None:
        count = await self._followers.follower_count(followee_id)
        if count is None or count >= self._push_threshold:
            return  # a pulled author's posts are merged at read time
        posts = await self._followers.recent_posts(followee_id, self._backfill)
        await self._timelines.extend(follower_id, posts)
