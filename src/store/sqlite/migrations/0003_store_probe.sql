-- catalytics schema, SQLite, version 3.
-- One row rewritten by the readiness probe while writes are failing, to
-- find out whether a durable write goes through again.

CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY,
    probed_at INTEGER NOT NULL
);
