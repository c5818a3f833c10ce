-- catalytics schema, SQLite, version 1.
-- Organization first everywhere: every lookup starts from org_key.

CREATE TABLE organizations (
    org_key     INTEGER PRIMARY KEY,
    org_id      TEXT NOT NULL UNIQUE
);

-- Name-only dimensions.
CREATE TABLE categories (
    category_key INTEGER PRIMARY KEY,
    org_key      INTEGER NOT NULL REFERENCES organizations(org_key),
    name         TEXT NOT NULL,
    UNIQUE (org_key, name)
);
CREATE TABLE manufacturers (
    manufacturer_key INTEGER PRIMARY KEY,
    org_key          INTEGER NOT NULL REFERENCES organizations(org_key),
    name             TEXT NOT NULL,
    UNIQUE (org_key, name)
);
CREATE TABLE applications (
    application_key INTEGER PRIMARY KEY,
    org_key         INTEGER NOT NULL REFERENCES organizations(org_key),
    name            TEXT NOT NULL,
    UNIQUE (org_key, name)
);
CREATE TABLE projects (
    project_key INTEGER PRIMARY KEY,
    org_key     INTEGER NOT NULL REFERENCES organizations(org_key),
    external_id TEXT NOT NULL,
    UNIQUE (org_key, external_id)
);

-- Named dimensions; name_ts is the timestamp of the event that set the
-- current names, so an older event arriving late never overwrites them.
CREATE TABLE catalogs (
    catalog_key  INTEGER PRIMARY KEY,
    org_key      INTEGER NOT NULL REFERENCES organizations(org_key),
    external_id  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    name_ts      INTEGER NOT NULL,
    UNIQUE (org_key, external_id)
);
CREATE TABLE components (
    component_key    INTEGER PRIMARY KEY,
    org_key          INTEGER NOT NULL REFERENCES organizations(org_key),
    external_id      TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    category_key     INTEGER REFERENCES categories(category_key),
    manufacturer_key INTEGER REFERENCES manufacturers(manufacturer_key),
    -- Current catalog ids, sorted, joined by U+001F: lets ingestion see
    -- cheaply whether membership changed.
    catalog_ids      TEXT NOT NULL,
    -- Sorted catalog names joined with '; ', maintained by ingestion so the
    -- export reads one column instead of aggregating per row.
    catalogs_label   TEXT,
    name_ts          INTEGER NOT NULL,
    UNIQUE (org_key, external_id)
);
CREATE TABLE component_catalogs (
    component_key INTEGER NOT NULL REFERENCES components(component_key),
    catalog_key   INTEGER NOT NULL REFERENCES catalogs(catalog_key),
    PRIMARY KEY (component_key, catalog_key)
) WITHOUT ROWID;
CREATE INDEX component_catalogs_by_catalog ON component_catalogs (catalog_key, component_key);

CREATE TABLE users (
    user_key    INTEGER PRIMARY KEY,
    org_key     INTEGER NOT NULL REFERENCES organizations(org_key),
    external_id TEXT NOT NULL,
    email       TEXT NOT NULL,
    name_ts     INTEGER NOT NULL,
    UNIQUE (org_key, external_id)
);

-- The narrow fact table, clustered for (organization, timestamp, id) scans.
CREATE TABLE events (
    org_key         INTEGER NOT NULL,
    ts              INTEGER NOT NULL,
    id              BLOB NOT NULL,
    kind            INTEGER NOT NULL,
    component_key   INTEGER NOT NULL,
    user_key        INTEGER NOT NULL,
    application_key INTEGER,
    project_key     INTEGER,
    PRIMARY KEY (org_key, ts, id)
) WITHOUT ROWID;
-- Idempotency: an event id is stored once per organization.
CREATE UNIQUE INDEX events_idempotency ON events (org_key, id);

CREATE TABLE access_grants (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('role', 'permission')),
    name       TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, kind, name)
) WITHOUT ROWID;
