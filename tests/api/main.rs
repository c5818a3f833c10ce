//! HTTP contract tests: the real application on port 0, spoken to over HTTP.

// A failed unwrap is a failed test, which is what tests are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod raw;

/// Defines each listed `async fn()` test twice: `NAME::sqlite` and
/// `NAME::postgres` (which skips loudly without a PostgreSQL test server).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::helpers::on_sqlite(super::$name()).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::helpers::on_postgres(super::$name()).await
                }
            }
        )*
    };
}

mod access;
mod admin_page;
mod admission;
mod audit;
mod auth_issuer;
mod auth_local;
mod browser;
mod cli;
mod csv_content;
mod demo;
mod erasure;
mod faults;
mod hardening;
mod ingest;
mod integrity;
mod login_link;
mod logs;
mod observability;
mod params;
mod process;
mod proxy;
mod readme;
mod replicas;
mod retention;
mod routing;
mod streaming;
mod summary;
