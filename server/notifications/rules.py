"""Which notifications an event creates: a pure function of its payload.

- follow.created -> `follow` to the followee
- post.liked -> `like` to the post's author
- comment.created -> `comment` to the post's author, `mention` to each user mentioned
- post.reposted -> `repost` to the original's author (data.repost_id: the repost)
- post.created -> `quote` to the quoted post's author (post_id: the quote, data.quoted_post_id:
  theirs), `mention` to each user mentioned
- post.published (hubbub.scheduling) -> `post_published` to the author (no actor: the system
  did it; post_id: the Hubbub post when there is one; data.scheduled_post_id)
- post.failed (hubbub.scheduling) -> `post_failed` to the author (data.scheduled_post_id,
  data.error, data.failed_targets: the kinds that failed)
One notification per recipient per event (a quoted author who is also mentioned gets the
`quote`), never to the actor themself. Blocks and mutes are applied by the store, against the
graph as it is when the event is handled. Replies notify nobody unless they mention them (the
contract has no `reply` kind).
"""

from __future__ import annotations

from typing import Any

from protocols.events import (
    CommentCreated,
    EventData,
    FollowCreated,
    PostCreated,
    PostFailed,
    PostLiked,
    PostPublished,
    PostReposted,
)
from protocols.ids import new_id
from protocols.notifications import NotificationDraft, NotificationKind


def drafts_for(event: EventData) -> list[NotificationDraft]:
    drafts: list[NotificationDraft] = []
    match event:
        case FollowCreated():
            drafts.append(_draft(event.followee_id, "follow", event.follower_id))
        case PostLiked():
            drafts.append(_draft(event.author_id, "like", event.user_id, post_id=event.post_id))
        case CommentCreated():
            drafts.append(_draft(event.post_author_id, "comment", event.author_id,
                                 post_id=event.post_id, comment_id=event.comment_id))
            drafts += [_draft(user_id, "mention", event.author_id, post_id=event.post_id,
                              comment_id=event.comment_id)
                       for user_id in event.mentioned_user_ids]
        case PostReposted():
            drafts.append(_draft(event.original_author_id, "repost", event.user_id,
                                 post_id=event.post_id, data={"repost_id": event.repost_id}))
        case PostCreated():
            if event.quote_of_author_id is not None and event.quote_of_id is not None:
                drafts.append(_draft(event.quote_of_author_id, "quote", event.author_id,
                                     post_id=event.post_id,
                                     data={"quoted_post_id": event.quote_of_id}))
            drafts += [_draft(user_id, "mention", event.author_id, post_id=event.post_id)
                       for user_id in event.mentioned_user_ids]
        case PostPublished():
            drafts.append(_draft(event.author_id, "post_published", None,
                                 post_id=event.post_id,
                                 data={"scheduled_post_id": event.scheduled_post_id}))
        case PostFailed():
            drafts.append(_draft(event.author_id, "post_failed", None, post_id=event.post_id,
                                 data={"scheduled_post_id": event.scheduled_post_id,
                                       "error": event.error or "",
                                       "failed_targets": [t.kind for t in event.targets
                                                          if t.status == "failed"]}))
        case _:
            pass
    return _one_per_recipient(drafts)


def _draft(user_id: str, kind: NotificationKind, actor_id: str | None, *,
           post_id: str | None = None, comment_id: str | None = None,
           data: dict[str, Any] | None = None) -> NotificationDraft:
    return NotificationDraft(id=new_id(), user_id=user_id, kind=kind, actor_id=actor_id,
                             post_id=post_id, comment_id=comment_id, data=data or {})


def _one_per_recipient(drafts: list[NotificationDraft]) -> list[NotificationDraft]:
    kept: dict[str, NotificationDraft] = {}
    for draft in drafts:
        if draft.user_id != draft.actor_id:
            kept.setdefault(draft.user_id, draft)
    return list(kept.values())
