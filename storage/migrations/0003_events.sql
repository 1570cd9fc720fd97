-- Events: the consumers' dead letters, and the indexes the outbox cleanup job needs.

-- An event a consumer gave up on after every retry, kept for operators to inspect and replay.
-- One row per (consumer, event): a later redelivery that fails again updates it.
CREATE TABLE dead_letter_events (
    consumer          text NOT NULL,
    event_id          uuid NOT NULL,
    type              text NOT NULL,
    envelope          jsonb NOT NULL,
    error             text NOT NULL,
    attempts          integer NOT NULL CHECK (attempts >= 1),
    dead_lettered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX dead_letter_events_time_idx ON dead_letter_events (dead_lettered_at);

-- Cleanup deletes published outbox rows past OUTBOX_RETENTION_HOURS and consumer claims past
-- seven days, oldest first, in small batches; these keep each batch an index range scan.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
