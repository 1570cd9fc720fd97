-- Posts area: the daily post limit counts a user's non-repost posts of the last 24 hours,
-- deleted ones included (deleting does not give the allowance back), under an advisory lock
-- per author; this index makes that count (and the Retry-After it computes) a short range scan.
CREATE INDEX posts_author_daily_idx ON posts (author_id, created_at DESC)
    WHERE repost_of_id IS NULL;
