//! HTTP contract tests: the real application on port 0, spoken to over HTTP.

// A failed unwrap is a failed test, which is what tests are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod access;
mod auth_issuer;
mod auth_local;
mod csv_content;
mod demo;
mod ingest;
mod params;
mod process;
mod routing;
mod streaming;
