-- Content: media, posts, likes, comments, reposts/quotes, idempotency, the event outbox,
-- consumer bookkeeping and notifications.

CREATE TABLE media (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- pending: a presigned upload was issued, bytes not yet verified; ready: verified image.
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
    content_type  text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    width         integer,
    height        integer,
    storage_key   text NOT NULL,
    thumb_key     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ready_at      timestamptz
);
CREATE INDEX media_owner_idx ON media (owner_id, created_at DESC);

CREATE TABLE posts (
    id             uuid PRIMARY KEY,  -- UUIDv7: id order is creation order
    author_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text           text NOT NULL DEFAULT '',
    reply_to_id    uuid REFERENCES posts (id) ON DELETE SET NULL,
    quote_of_id    uuid REFERENCES posts (id) ON DELETE SET NULL,
    repost_of_id   uuid REFERENCES posts (id) ON DELETE CASCADE,
    has_media      boolean NOT NULL DEFAULT false,
    like_count     integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    comment_count  integer NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
    repost_count   integer NOT NULL DEFAULT 0 CHECK (repost_count >= 0),
    quote_count    integer NOT NULL DEFAULT 0 CHECK (quote_count >= 0),
    reply_count    integer NOT NULL DEFAULT 0 CHECK (reply_count >= 0),
    view_count     bigint  NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    search         tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
);
-- A user's posts newest first (profile pages, pull-merge of big authors, daily limit).
CREATE INDEX posts_author_idx ON posts (author_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX posts_created_idx ON posts (id DESC) WHERE deleted_at IS NULL;
CREATE INDEX posts_reply_idx ON posts (reply_to_id, id) WHERE reply_to_id IS NOT NULL;
CREATE INDEX posts_quote_idx ON posts (quote_of_id) WHERE quote_of_id IS NOT NULL;
CREATE INDEX posts_search_idx ON posts USING gin (search);
-- One live repost of a post per user.
CREATE UNIQUE INDEX posts_one_repost_idx ON posts (author_id, repost_of_id)
    WHERE repost_of_id IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE post_media (
    post_id   uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    media_id  uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    position  smallint NOT NULL CHECK (position BETWEEN 0 AND 9),
    PRIMARY KEY (post_id, position),
    UNIQUE (media_id)  -- an upload belongs to at most one post
);

CREATE TABLE likes (
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX likes_user_idx ON likes (user_id, created_at DESC);
CREATE INDEX likes_page_idx ON likes (post_id, created_at DESC, user_id DESC);

CREATE TABLE comments (
    id          uuid PRIMARY KEY,
    post_id     uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX comments_post_idx ON comments (post_id, id);

-- Idempotency-Key: the first result of a keyed request, stored in the same transaction as
-- the write it describes, so a retry returns it and creates nothing.
CREATE TABLE idempotency_keys (
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope          text NOT NULL,         -- route name, e.g. posts.create
    key            text NOT NULL,
    request_hash   bytea NOT NULL,        -- a different body under the same key is a 409/422
    status         integer NOT NULL,
    response       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_age_idx ON idempotency_keys (created_at);

-- Transactional outbox: a domain event is inserted in the same transaction as the change it
-- describes; the relay publishes rows in `seq` order and stamps published_at.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    topic         text NOT NULL,
    key           text NOT NULL,
    type          text NOT NULL,
    envelope      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (seq) WHERE published_at IS NULL;

-- At-least-once delivery, exactly-once effect: a consumer records each event it applied in
-- the same transaction as the effect; a redelivery finds the row and does nothing.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE notifications (
    id          uuid PRIMARY KEY,  -- UUIDv7: newest first is id DESC
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    actor_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    post_id     uuid REFERENCES posts (id) ON DELETE CASCADE,
    comment_id  uuid REFERENCES comments (id) ON DELETE CASCADE,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL;
