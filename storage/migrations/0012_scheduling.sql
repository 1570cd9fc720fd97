-- Scheduled posts (server/scheduling): the posts, one row per publishing target, and a log of
-- every publish attempt. Written by storage/postgres/scheduled_posts.py (authors) and
-- storage/postgres/schedule_claims.py (the schedulers of every node).

CREATE TABLE scheduled_posts (
    id                   uuid PRIMARY KEY,  -- UUIDv7
    author_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text                 text NOT NULL,
    media_ids            uuid[] NOT NULL DEFAULT '{}',
    scheduled_for        timestamptz NOT NULL,
    timezone             text NOT NULL,               -- IANA name
    local_time           timestamp NOT NULL,          -- scheduled_for on that zone's wall clock
    requested_local_time timestamp,                   -- the wall time asked for, if one was
    resolution           text NOT NULL DEFAULT 'exact' CHECK (resolution IN
                             ('exact', 'shifted_forward', 'earlier_of_two', 'later_of_two')),
    priority             smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),  -- 0 urgent .. 3 low
    status               text NOT NULL DEFAULT 'scheduled' CHECK (status IN
                             ('scheduled', 'publishing', 'published', 'failed', 'cancelled')),
    post_id              uuid REFERENCES posts (id) ON DELETE SET NULL,
    -- When a scheduler should take the post: scheduled_for, a target's retry time, or, while a
    -- node holds it, the end of that node's lease (so a dead holder's post falls due again).
    -- NULL exactly when the post is settled (published, failed, cancelled).
    next_attempt_at      timestamptz,
    -- The lease: which node holds the post and until when. claim_seq fences that node's
    -- writes: every claim bumps it, and a write from an older claim is refused.
    claimed_by           text,
    claimed_until        timestamptz,
    claim_seq            bigint NOT NULL DEFAULT 0,
    rounds               integer NOT NULL DEFAULT 0,  -- claims so far
    last_error           text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    publishing_at        timestamptz,                 -- first claimed
    published_at         timestamptz,
    failed_at            timestamptz,
    cancelled_at         timestamptz,
    CHECK ((claimed_by IS NULL) = (claimed_until IS NULL)),
    CHECK ((status IN ('scheduled', 'publishing')) = (next_attempt_at IS NOT NULL))
);
-- The claim query: per priority, urgent first, the due posts oldest first, read straight off
-- this index (a LATERAL per priority, storage/postgres/schedule_claims.py), so a claim touches
-- only the rows it takes however many posts are due or scheduled for later.
CREATE INDEX scheduled_posts_claim_idx ON scheduled_posts (priority, next_attempt_at)
    WHERE status IN ('scheduled', 'publishing');
-- "When is the next post due", whatever its priority: the scheduler's sleep.
CREATE INDEX scheduled_posts_due_idx ON scheduled_posts (next_attempt_at)
    WHERE status IN ('scheduled', 'publishing');
-- An author's list (soonest first, keyset on (scheduled_for, id)) and the rules' look-around.
CREATE INDEX scheduled_posts_author_idx ON scheduled_posts (author_id, scheduled_for, id);
-- The pending-limit count, without walking an author's whole history.
CREATE INDEX scheduled_posts_pending_idx ON scheduled_posts (author_id)
    WHERE status IN ('scheduled', 'publishing');
-- The dead-letter queue, most recently failed first.
CREATE INDEX scheduled_posts_failed_idx ON scheduled_posts (author_id, failed_at DESC, id DESC)
    WHERE status = 'failed';

CREATE TABLE scheduled_post_targets (
    scheduled_post_id  uuid NOT NULL REFERENCES scheduled_posts (id) ON DELETE CASCADE,
    position           smallint NOT NULL CHECK (position >= 0),
    kind               text NOT NULL,                 -- hubbub | webhook | x
    connection_id      uuid,                          -- the external account or webhook
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN
                           ('pending', 'published', 'failed', 'cancelled')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- this round
    next_attempt_at    timestamptz,                   -- pending: not tried before this
    external_id        text,
    url                text,
    last_error_code    text,
    last_error         text,
    published_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scheduled_post_id, position)
);

-- Every try at every target, kept for the dead-letter queue's inspection.
CREATE TABLE scheduled_post_attempts (
    id                 uuid PRIMARY KEY,  -- UUIDv7: id order is attempt order
    scheduled_post_id  uuid NOT NULL REFERENCES scheduled_posts (id) ON DELETE CASCADE,
    position           smallint NOT NULL,
    kind               text NOT NULL,
    connection_id      uuid,
    attempt            integer NOT NULL CHECK (attempt >= 1),
    node_id            text NOT NULL,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('published', 'transient', 'permanent')),
    error_code         text,
    error              text,
    external_id        text,
    retry_at           timestamptz
);
CREATE INDEX scheduled_post_attempts_post_idx ON scheduled_post_attempts (scheduled_post_id, id);
