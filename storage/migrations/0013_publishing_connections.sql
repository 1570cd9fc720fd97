-- Publishing connections (server/publishing): the external accounts (X) and webhooks a user's
-- scheduled posts can target. Written by storage/postgres/publishing_connections.py.
--
-- `sealed` holds the credentials (an X access/refresh token, a webhook signing secret)
-- encrypted with AES-256-GCM under PUBLISHING_ENCRYPTION_KEY, bound to the row's id and kind
-- (server/publishing/crypto.py): the database, its backups and its replicas never see them in
-- clear, and a sealed value copied onto another row does not open.

CREATE TABLE publishing_connections (
    id                uuid PRIMARY KEY,  -- UUIDv7
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('webhook', 'x')),
    label             text,
    url               text,              -- webhook: where deliveries go (not a secret)
    external_user_id  text,              -- x: the account's id, as the user gave it
    username          text,              -- x: its handle
    expires_at        timestamptz,       -- x: when the access token expires, if known
    sealed            bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'webhook') = (url IS NOT NULL))
);
-- A user's list, oldest first.
CREATE INDEX publishing_connections_user_idx ON publishing_connections (user_id, created_at, id);
