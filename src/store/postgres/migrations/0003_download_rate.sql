-- catalytics schema, PostgreSQL, version 3.
--
-- The per-organization download rate limit, shared by every replica:
-- one row per organization holding GCRA's theoretical arrival time.

CREATE TABLE download_rate (
    org_id text PRIMARY KEY,
    tat    timestamptz NOT NULL
);
