"""Live push from the REST side to sockets: new notifications and new home-feed posts.

Both go through the recipient's UserActor (which knows the user's sessions and keeps the
unread count), but only for recipients who are connected right now: a push to an offline
user has no socket to reach, and activating their actor would only cost memory. Offline
users see the same items on their next REST read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from actors.errors import ActorError
from actors.user import UserActor
from protocols.notifications import Notification
from protocols.posts import Post
from protocols.socket import to_wire
from protocols.user_messages import PushFeedItem, PushNotification
from server.gateway.connections import Gateway

log = logging.getLogger("hubbub.gateway.push")
# Hydrates one post as one viewer sees it (None: hidden from them, e.g. muted or blocked).
PostForViewer = Callable[[str, str], Awaitable[Post | None]]


async def push_notification(gw: Gateway, user_id: str, notification: Notification) -> None:
    """The notifications area's NotificationSink: called after the row is committed."""
    if gw.presence is None or not await gw.presence.online([user_id]):
        return
    try:
        await gw.system.ref(UserActor, user_id).tell(
            PushNotification(notification=to_wire(notification)))
    except ActorError:
        log.info("notification push to %s dropped: actor system stopped", user_id)


async def push_feed_post(gw: Gateway, post_for: PostForViewer, user_ids: Sequence[str],
                         post_id: str) -> None:
    """`post_id` just landed in these users' home timelines: push `feed:new` to those
    connected, each with the post as they see it (mutes and blocks respected)."""
    if gw.presence is None or not user_ids:
        return
    online = await gw.presence.online(list(user_ids))
    for user_id in user_ids:
        if user_id not in online:
            continue
        post = await post_for(post_id, user_id)
        if post is None:
            continue
        try:
            await gw.system.ref(UserActor, user_id).tell(PushFeedItem(post=to_wire(post)))
        except ActorError:
            log.info("feed push to %s dropped: actor system stopped", user_id)
            return
