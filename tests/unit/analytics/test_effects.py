"""Which counters each event moves (the analytics consumer's rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from protocols.analytics_records import (
    FollowerActive,
    FollowerChange,
    FollowerEngaged,
    PostBump,
    PostGone,
    PostSeen,
)
from protocols.events import (
    CommentCreated,
    FollowCreated,
    FollowDeleted,
    MessageSent,
    PostCreated,
    PostDeleted,
    PostLiked,
    PostReposted,
    PostUnliked,
)
from server.analytics.effects import effects_for

WHEN = datetime(2026, 3, 8, 14, 37, 12, tzinfo=UTC)
HOUR = datetime(2026, 3, 8, 14, tzinfo=UTC)


def test_likes_comments_reposts_bump_the_hour_of_the_event() -> None:
    assert effects_for(PostLiked(post_id="p", author_id="a", user_id="f"), WHEN) == [
        PostBump("p", HOUR, likes=1), FollowerEngaged("a", "f", HOUR), FollowerActive("f", HOUR)]
    assert effects_for(PostUnliked(post_id="p", author_id="a", user_id="f"), WHEN) == [
        PostBump("p", HOUR, unlikes=1)]
    assert effects_for(CommentCreated(comment_id="c", post_id="p", post_author_id="a",
                                      author_id="f"), WHEN)[0] == PostBump("p", HOUR, comments=1)
    assert effects_for(PostReposted(post_id="p", original_author_id="a", repost_id="r",
                                    user_id="f", created_at=WHEN), WHEN)[0] == \
        PostBump("p", HOUR, reposts=1)


def test_own_engagement_is_not_audience_evidence() -> None:
    assert effects_for(PostLiked(post_id="p", author_id="a", user_id="a"), WHEN) == [
        PostBump("p", HOUR, likes=1), FollowerActive("a", HOUR)]


def test_a_quote_counts_for_the_quoted_post() -> None:
    created = PostCreated(post_id="q", author_id="f", created_at=WHEN, quote_of_id="p",
                          quote_of_author_id="a")
    assert effects_for(created, WHEN) == [
        PostSeen("q"), FollowerActive("f", HOUR), PostBump("p", HOUR, quotes=1),
        FollowerEngaged("a", "f", HOUR)]


def test_follows_and_deletes_and_other_events() -> None:
    assert effects_for(FollowCreated(follower_id="f", followee_id="a"), WHEN) == [
        FollowerChange("a", date(2026, 3, 8), gained=1)]
    assert effects_for(FollowDeleted(follower_id="f", followee_id="a"), WHEN) == [
        FollowerChange("a", date(2026, 3, 8), lost=1)]
    assert effects_for(PostDeleted(post_id="p", author_id="a", deleted_by="a"), WHEN) == [
        PostGone("p")]
    assert effects_for(MessageSent(message_id="m", room_id="r", seq=1, sender_id="a",
                                   created_at=WHEN), WHEN) == []
