-- Post analytics (server/analytics): counters kept up to date by the "analytics" event consumer
-- and the view counter's flush, so that reads are index range scans and never scan or count
-- the likes / comments / posts tables. Written by storage/postgres/analytics.py.

-- One row per post and UTC hour in which something happened to it. Counts are gross for the
-- hour: an unlike is counted in `unlikes`, not taken off `likes`, so no bucket goes negative.
CREATE TABLE post_analytics_hourly (
    post_id   uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    hour      timestamptz NOT NULL,
    views     bigint  NOT NULL DEFAULT 0,
    likes     integer NOT NULL DEFAULT 0,
    unlikes   integer NOT NULL DEFAULT 0,
    comments  integer NOT NULL DEFAULT 0,
    reposts   integer NOT NULL DEFAULT 0,
    quotes    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (post_id, hour)
);

-- Lifetime totals per post, for a user's summary (totals, best and worst posts) without
-- summing every bucket of every post on each read.
CREATE TABLE post_analytics_totals (
    post_id      uuid PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    author_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    deleted      boolean NOT NULL DEFAULT false,
    views        bigint  NOT NULL DEFAULT 0,
    likes        integer NOT NULL DEFAULT 0,
    unlikes      integer NOT NULL DEFAULT 0,
    comments     integer NOT NULL DEFAULT 0,
    reposts      integer NOT NULL DEFAULT 0,
    quotes       integer NOT NULL DEFAULT 0,
    engagements  bigint GENERATED ALWAYS AS
                     (greatest(likes - unlikes, 0) + comments + reposts + quotes) STORED
);
-- Best and worst posts of an author: read off this index, most / least engaged first.
CREATE INDEX post_analytics_totals_author_idx
    ON post_analytics_totals (author_id, engagements, created_at) WHERE NOT deleted;

-- When a user's followers were around, per UTC hour: `engaged` counts followers' likes,
-- comments, reposts, quotes and replies on the user's posts; `active` counts anything a
-- follower did (posting, liking, commenting, reposting anywhere). Stored per real hour, not
-- per hour-of-week, so the best times can be read in any time zone, DST included.
CREATE TABLE follower_activity_hourly (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hour     timestamptz NOT NULL,
    engaged  integer NOT NULL DEFAULT 0,
    active   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, hour)
);

-- Followers gained and lost per user and UTC day.
CREATE TABLE follower_changes_daily (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day      date NOT NULL,
    gained   integer NOT NULL DEFAULT 0,
    lost     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
