-- catalytics schema, PostgreSQL, version 2 (DESIGN §3.1).
-- The idempotency key is the event id alone (its organization is one of
-- its facts), kept with a fingerprint of the event's facts so that a
-- re-sent id can be told apart as a duplicate or a conflict. Keyed by id,
-- this table is looked up by id only, so a distributed deployment shards
-- it by id. Events stored before this version have no fingerprint: a
-- re-send of one is a duplicate.
CREATE TABLE event_ids_v2 (
    id      uuid PRIMARY KEY,
    org_key bigint NOT NULL,
    facts   bytea
);
INSERT INTO event_ids_v2 (id, org_key)
SELECT DISTINCT ON (id) id, org_key FROM event_ids ORDER BY id, org_key;
DROP TABLE event_ids;
ALTER TABLE event_ids_v2 RENAME TO event_ids;
