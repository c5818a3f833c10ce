-- catalytics schema, SQLite, version 2 (DESIGN §3.1).
-- The idempotency key is the event id alone (its organization is one of
-- its facts), kept with a fingerprint of the event's facts so that a
-- re-sent id can be told apart as a duplicate or a conflict. Events stored
-- before this version have no fingerprint: a re-send of one is a duplicate.
CREATE TABLE event_ids (
    id      BLOB PRIMARY KEY,
    org_key INTEGER NOT NULL,
    facts   BLOB
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_ids (id, org_key) SELECT id, org_key FROM events;
-- event_ids now answers "is this id stored?"; the index did that before.
DROP INDEX events_idempotency;
