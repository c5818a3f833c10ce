//! Metrics: every series the service exports, named in one place, and the
//! Prometheus recorder that `GET /metrics` renders (`metrics` facade +
//! `metrics-exporter-prometheus`, no listener of its own: the service's
//! router serves the text).
//!
//! Call sites use the small functions below, never the macros with a
//! literal name, so a series is spelled once. The recorder is process-wide
//! (the `metrics` facade has one global recorder); several applications in
//! one process (tests) share it.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// `http_requests_total{method,route,status}`: finished requests.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// `http_request_duration_seconds{method,route}`: time to the response head.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// `catalytics_export_rows_total`: CSV rows streamed to clients.
pub const EXPORT_ROWS: &str = "catalytics_export_rows_total";
/// `catalytics_export_bytes_total`: CSV bytes streamed to clients (header included).
pub const EXPORT_BYTES: &str = "catalytics_export_bytes_total";
/// `catalytics_events_accepted_total`: events newly stored by ingestion.
pub const EVENTS_ACCEPTED: &str = "catalytics_events_accepted_total";
/// `catalytics_events_duplicates_total`: reported events already stored.
pub const EVENTS_DUPLICATES: &str = "catalytics_events_duplicates_total";
/// `catalytics_events_conflicts_total`: reported events whose id is stored
/// with different content.
pub const EVENTS_CONFLICTS: &str = "catalytics_events_conflicts_total";
/// `catalytics_downloads_in_flight`: downloads streaming now.
pub const DOWNLOADS_IN_FLIGHT: &str = "catalytics_downloads_in_flight";
/// `catalytics_downloads_queued`: downloads waiting for a slot.
pub const DOWNLOADS_QUEUED: &str = "catalytics_downloads_queued";
/// `catalytics_store_errors_total{kind}`: store failures met by requests.
pub const STORE_ERRORS: &str = "catalytics_store_errors_total";
/// `catalytics_store_pool_connections{state}`: the store's connection pool
/// (`in_use`, `idle`, `max`), sampled at each scrape.
pub const STORE_POOL: &str = "catalytics_store_pool_connections";

/// `catalytics_log_lines_lost_total`: log lines the sink could not take
/// (full disk, closed pipe), sampled at each scrape: logging is best
/// effort, so this is how an operator learns that lines went missing.
pub const LOG_LINES_LOST: &str = "catalytics_log_lines_lost_total";

/// Latency buckets, in seconds: 1 ms to a minute (long downloads).
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its
/// handle; `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &DURATION_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The exposition text of every series (Prometheus text format 0.0.4).
pub fn render() -> String {
    match install() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from request to response head, by route."
    );
    describe_counter!(EXPORT_ROWS, "CSV rows streamed by downloads.");
    describe_counter!(
        EXPORT_BYTES,
        Unit::Bytes,
        "CSV bytes streamed by downloads."
    );
    describe_counter!(EVENTS_ACCEPTED, "Reported events newly stored.");
    describe_counter!(
        EVENTS_DUPLICATES,
        "Reported events that were already stored."
    );
    describe_counter!(
        EVENTS_CONFLICTS,
        "Reported events whose id is stored with different content."
    );
    describe_gauge!(DOWNLOADS_IN_FLIGHT, "Downloads streaming now.");
    describe_gauge!(DOWNLOADS_QUEUED, "Downloads waiting for a free slot.");
    describe_counter!(STORE_ERRORS, "Store failures met by requests, by kind.");
    describe_counter!(
        LOG_LINES_LOST,
        "Log lines lost because the log sink failed (full disk, closed pipe)."
    );
    describe_gauge!(
        STORE_POOL,
        "Store connections, by state (in_use, idle, max)."
    );
    // Present from the first scrape, so dashboards and alerts see zeros
    // rather than missing series.
    for name in [
        EXPORT_ROWS,
        EXPORT_BYTES,
        EVENTS_ACCEPTED,
        EVENTS_DUPLICATES,
        EVENTS_CONFLICTS,
        LOG_LINES_LOST,
    ] {
        counter!(name).absolute(0);
    }
    gauge!(DOWNLOADS_IN_FLIGHT).set(0.0);
    gauge!(DOWNLOADS_QUEUED).set(0.0);
}

/// One finished request. `route` is the matched route template (never the
/// raw path, so the label set stays small).
pub fn request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// A chunk of a download: `rows` rows encoded as `bytes` bytes.
pub fn exported(rows: usize, bytes: usize) {
    counter!(EXPORT_ROWS).increment(rows as u64);
    counter!(EXPORT_BYTES).increment(bytes as u64);
}

/// What one committed ingestion batch did. ([`EVENTS_CONFLICTS`] stays at
/// zero until the outcome reports conflicts.)
pub fn ingested(outcome: &crate::store::IngestOutcome) {
    counter!(EVENTS_ACCEPTED).increment(outcome.accepted);
    counter!(EVENTS_DUPLICATES).increment(outcome.duplicates);
    counter!(EVENTS_CONFLICTS).increment(outcome.conflicts);
}

/// A store failure met by a request; `kind` is the error's variant.
pub fn store_error(kind: &'static str) {
    counter!(STORE_ERRORS, "kind" => kind).increment(1);
}

/// The store's connection pool at scrape time.
pub fn store_pool(in_use: usize, idle: usize, max: usize) {
    gauge!(STORE_POOL, "state" => "in_use").set(in_use as f64);
    gauge!(STORE_POOL, "state" => "idle").set(idle as f64);
    gauge!(STORE_POOL, "state" => "max").set(max as f64);
}

/// Downloads streaming and waiting for a slot, at scrape time.
pub fn downloads(in_flight: usize, queued: usize) {
    gauge!(DOWNLOADS_IN_FLIGHT).set(in_flight as f64);
    gauge!(DOWNLOADS_QUEUED).set(queued as f64);
}

/// Log lines lost so far by the best-effort log sink, at scrape time.
pub fn log_lines_lost(total: u64) {
    counter!(LOG_LINES_LOST).absolute(total);
}
