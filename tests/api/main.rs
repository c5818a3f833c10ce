//! HTTP contract tests: the real application on port 0, spoken to over HTTP.

mod helpers;

mod access;
mod auth_issuer;
mod auth_local;
mod csv_content;
mod demo;
mod ingest;
mod params;
mod routing;
mod streaming;
