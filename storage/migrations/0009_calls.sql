-- Calls: one row per call and one per participant (everyone invited), with outcome and
-- duration once the call ended. Written only by the call's CallActor (storage/postgres/calls.py).

CREATE TABLE calls (
    id            uuid PRIMARY KEY,
    -- Group calls: the room rung; 1:1 calls: the two users' direct room (for the history's
    -- system message). Ad-hoc group calls of a few users have none.
    room_id       uuid REFERENCES rooms (id) ON DELETE SET NULL,
    kind          text NOT NULL CHECK (kind IN ('direct', 'group')),
    media         text NOT NULL CHECK (media IN ('audio', 'video')),
    state         text NOT NULL CHECK (state IN ('invited', 'ringing', 'active', 'ended')),
    initiator_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    answered_at   timestamptz,
    ended_at      timestamptz,
    end_reason    text CHECK (end_reason IN ('hangup', 'cancelled', 'rejected', 'unanswered')),
    -- Seconds from the first answer to the end (null when never answered).
    duration      double precision GENERATED ALWAYS AS
                      (extract(epoch FROM ended_at - answered_at)) STORED,
    -- Renewed by the live call's actor; a call whose node died stops making anyone busy once
    -- this has passed.
    alive_until   timestamptz NOT NULL,
    CHECK ((state = 'ended') = (ended_at IS NOT NULL))
);
CREATE INDEX calls_room_idx ON calls (room_id, created_at) WHERE room_id IS NOT NULL;

CREATE TABLE call_participants (
    call_id    uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position   integer NOT NULL,  -- invitation order, the caller first
    -- While the call goes on: ringing | joined | ...; after it ended, the outcome: left (was
    -- in the call), missed, rejected, cancelled, busy (in another call: never rung).
    state      text NOT NULL CHECK (state IN ('ringing', 'joined', 'left', 'missed', 'rejected',
                                              'cancelled', 'busy')),
    device_id  text,  -- the socket the participant joined from
    joined_at  timestamptz,
    left_at    timestamptz,
    duration   double precision GENERATED ALWAYS AS
                   (extract(epoch FROM left_at - joined_at)) STORED,
    PRIMARY KEY (call_id, user_id)
);
-- "Is this user in a live call?" (the busy check) and "my calls".
CREATE INDEX call_participants_joined_idx ON call_participants (user_id) WHERE state = 'joined';
CREATE INDEX call_participants_user_idx ON call_participants (user_id, call_id);
