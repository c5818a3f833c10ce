//! catalytics records how an organization's component library is used
//! (views, downloads, placements) and lets the organization's administrators
//! download that usage as CSV for any time window, through an operation
//! wire-compatible with the Library API's
//! `GET /library/components/analytics/download`.
//!
//! # Layout
//! - [`cli`] — the commands (`serve`, `demo`, `token`, `login-link`, `grant`,
//!   `revoke`, `access list`, `import`, `migrate`, `erase`, `audit list`), settings resolution and the data
//!   dir check; `main.rs` only parses, sets up logging and dispatches.
//! - [`config`] — typed settings: defaults, TOML file, `CATALYTICS_*` env, flags.
//! - [`startup`] — [`startup::Application`]: store + verifier + bound listener,
//!   run until a shutdown signal. Tests run it on port 0.
//! - [`listener`] — the accept loop and connection hygiene: connection
//!   limit, head and idle timers, JSON answers for unparseable requests.
//! - [`telemetry`] — the tracing subscriber (`--log-format text|json`,
//!   colours only on a terminal) and its best-effort log sink.
//! - [`metrics`] — every Prometheus series, named once, and the recorder
//!   that `GET /metrics` renders.
//! - [`http`] — routes, extractors (authentication, authorization and
//!   validation: `EventBatch`, `DownloadWindow`), middleware (request ids,
//!   spans, request limits, request metrics), one module per operation
//!   (download, summary, events, erasures, the login-link redemption) and
//!   the admin page (`http/admin/`: HTML, script and style compiled into the
//!   binary);
//!   `http::openapi` builds `GET /openapi.json` from the handlers' annotations.
//! - [`error`] — [`error::ApiError`], the only place errors become HTTP.
//! - [`domain`] — types parsed once at the boundary: [`domain::Timestamp`],
//!   [`domain::DateRange`], [`domain::OrgId`], [`domain::EventKind`], [`domain::Event`],
//!   [`domain::Problem`], a validation problem as parsers report it, and the
//!   summary's bucket rules ([`domain::Interval`], [`domain::Buckets`]).
//! - [`ingest`] — request bodies (JSON, NDJSON) → validated events, shared by
//!   the HTTP operation, `import` and the demo.
//! - [`auth`] — JWT verification against a JWKS (local issuer or remote),
//!   with a short cache of verified tokens, and local mode's one-time
//!   sign-in codes (`auth::login_code`), which never pass for tokens.
//! - [`store`] — the [`store::Store`] trait and one module per backend:
//!   `store::sqlite` (writer thread with group commit that reopens itself
//!   after a full disk or read-only file, read pool, background
//!   checkpoints, cached name dictionaries) and `store::postgres` (pool,
//!   set-based ingestion, binary-COPY export, the replicas' shared download
//!   rate limit). Exports are narrow integer rows plus the organization's
//!   names ([`store::Export`]). Ingestion is read (per backend) →
//!   [`store::decide`] (one pure decision for both: new, duplicate or
//!   conflicting events, which names and memberships change) → write (per
//!   backend); [`store::facts`] fingerprints the facts kept with each event id.
//!   Each backend computes the usage summary; `store::summary` holds what
//!   they share (folding into buckets, ranking the top lists).
//! - [`privacy`] — keyed pseudonyms of erased users and the retention task
//!   (erasure and the audit trail are store methods; see `docs/privacy.md`).
//! - [`export`] — names rendered once into CSV cells (with the
//!   spreadsheet-injection guard) in a [`export::Dictionary`], and the
//!   writer that turns narrow rows into CSV chunks by copying them.
//! - [`demo`] — realistic generated data for `catalytics demo` and the benchmarks.
//!
//! Outside `src/`: `tests/api/` (HTTP contract tests, each run on SQLite and
//! PostgreSQL, and the admin page driven in Chromium by `tests/browser/`),
//! `tests/store_contract.rs` (the store contract on both backends),
//! `benches/`, `scripts/bench` and `scripts/bench-summary` (figures in
//! BENCHMARKS.md),
//! `examples/` (event generators and HTTP load client), `docs/`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod export;
pub mod http;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod privacy;
pub mod startup;
pub mod store;
pub mod telemetry;
