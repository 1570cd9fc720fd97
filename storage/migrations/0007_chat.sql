-- Chat: rooms, their members and their messages; `message` notifications point at a room.

CREATE TABLE rooms (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('direct', 'group')),
    name             text,
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Direct rooms only: the two member ids, sorted and joined by ':'. Unique, so creating a
    -- direct room between the same two users again finds the first one, even concurrently.
    direct_key       text UNIQUE,
    -- The highest seq stored and when it was written, moved in the same statement that
    -- inserts the message (for room lists: last message, unread counts, activity order).
    last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE room_members (
    room_id        uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    joined_at      timestamptz NOT NULL DEFAULT now(),
    -- Read receipts: only ever moves forward (GREATEST on every write).
    last_read_seq  bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user_idx ON room_members (user_id);

CREATE TABLE messages (
    id          uuid PRIMARY KEY,
    room_id     uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 1),
    -- No foreign key on purpose: removing an account must not punch holes in a room's
    -- gap-free sequence.
    sender_id   uuid NOT NULL,
    client_id   text NOT NULL,
    text        text NOT NULL,
    kind        text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'system')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The fence: only one message per seq, even during a brief double activation of a room
    -- in a cluster (the second writer fails, reloads and takes the next seq).
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq),
    -- Idempotency: a resend with the same client_id finds the first message.
    CONSTRAINT messages_client_key UNIQUE (room_id, sender_id, client_id)
);

-- `message` notifications: at most one unread per (recipient, room), naming the first message
-- missed; later messages add nothing until it is read (the room's unread count has the rest),
-- so a busy room does not pile up rows, or writes, for someone who is away.
ALTER TABLE notifications ADD COLUMN room_id uuid REFERENCES rooms (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX notifications_message_unread_idx ON notifications (user_id, room_id)
    WHERE kind = 'message' AND read_at IS NULL;
