-- Feeds and notifications.

-- The popular ranking sums the likes of the last hours (comments and posts are ranged by
-- their UUIDv7 ids, which are time-ordered, so they need nothing new).
CREATE INDEX likes_created_idx ON likes (created_at);

-- A follow, a like or a repost notifies its recipient once per (actor, post): following,
-- unfollowing and following again, or liking twice, is not a second notification.
CREATE UNIQUE INDEX notifications_once_idx
    ON notifications (user_id, kind, actor_id, post_id) NULLS NOT DISTINCT
    WHERE kind IN ('follow', 'like', 'repost');
