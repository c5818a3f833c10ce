-- Privacy and governance (docs/privacy.md): the pseudonym secret, erased
-- users, the audit trail.

-- Per-deployment secrets, created on first start. The pseudonym key makes
-- erased users' pseudonyms impossible to recompute from a guessed id.
CREATE TABLE deployment_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Erased users, by pseudonym only (the real id is not kept): ingestion
-- computes each incoming user's pseudonym and looks it up here.
CREATE TABLE erased_users (
    org_id    TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    erased_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, pseudonym)
) WITHOUT ROWID;

-- The audit trail: one JSON record per download, summary, erasure, grant
-- and revoke (see domain::AuditRecord), retained on its own schedule.
CREATE TABLE audit_log (
    seq    INTEGER PRIMARY KEY,
    org_id TEXT NOT NULL,
    at     INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (org_id, at, seq);
CREATE INDEX audit_log_by_time ON audit_log (at);
