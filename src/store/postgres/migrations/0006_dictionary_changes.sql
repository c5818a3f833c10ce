-- A log of changes to the names a download shows, so that a process can
-- keep an organization's rendered names in memory and know, inside any
-- snapshot, whether they are still current (see export.rs and
-- docs/decisions.md).
--
-- One row per statement that changed (or deleted) a name of an
-- organization: updates that only move `name_ts` add nothing. Rows are
-- only ever inserted, so concurrent writers never wait on each other here,
-- and the number of rows an organization has in a snapshot identifies the
-- changes that snapshot sees (commits become visible in one order, so two
-- snapshots that see as many changes see the same ones). New dimension
-- rows are not logged: a reader detects keys it does not hold.
CREATE TABLE dictionary_changes (
    org_key bigint NOT NULL,
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org_key, seq)
);

CREATE FUNCTION log_dictionary_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dictionary_changes (org_key)
    SELECT DISTINCT (changed.r ->> 'org_key')::bigint
    FROM (SELECT to_jsonb(o) - 'name_ts' AS r FROM old_rows o
          EXCEPT ALL
          SELECT to_jsonb(n) - 'name_ts' FROM new_rows n) changed;
    RETURN NULL;
END $$;

CREATE FUNCTION log_dictionary_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dictionary_changes (org_key) SELECT DISTINCT org_key FROM old_rows;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['components', 'users', 'categories', 'manufacturers',
                             'applications', 'projects']
    LOOP
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE ON %I
                 REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                 FOR EACH STATEMENT EXECUTE FUNCTION log_dictionary_update()',
            t || '_names_updated', t);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER DELETE ON %I
                 REFERENCING OLD TABLE AS old_rows
                 FOR EACH STATEMENT EXECUTE FUNCTION log_dictionary_delete()',
            t || '_names_deleted', t);
    END LOOP;
END $$;
