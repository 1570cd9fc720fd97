-- Fenced call saves for a cluster (storage/postgres/calls.py): during a membership change one
-- call may briefly have two CallActor activations; a save succeeds only from the version it
-- was derived from, so the stale activation's write is refused instead of overwriting.
-- 0 means "never stored" to the actor, so calls stored before this migration start at 1.
ALTER TABLE calls ADD COLUMN version bigint NOT NULL DEFAULT 0;
UPDATE calls SET version = 1;

-- The node holding a joined participant's socket (device_id), so that when a node dies its
-- participants can be made to leave their calls.
ALTER TABLE call_participants ADD COLUMN device_node text;

-- "Which live calls have a participant joined from this node?" (the dead-node reaper).
CREATE INDEX call_participants_node_idx ON call_participants (device_node)
    WHERE state = 'joined';
