//! Micro-benchmarks of the per-row and per-event hot paths:
//! CSV encoding (export), timestamp parse/format, batch parsing (ingestion).

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::export::CsvEncoder;
use catalytics::ingest::{parse_json, to_wire};
use catalytics::store::ExportRow;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn rows(n: usize) -> Vec<ExportRow> {
    let library = DemoLibrary::generate(1, 200, 50);
    library
        .events(1, n, 90, Timestamp::now())
        .flatten()
        .map(|e| ExportRow {
            timestamp: e.timestamp,
            kind: e.kind,
            component_id: e.component.id.to_string(),
            component_name: e.component.display_name.to_string(),
            catalogs: Some(
                e.component
                    .catalogs
                    .iter()
                    .map(|c| c.display_name.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            category: e.component.category.map(|c| c.to_string()),
            manufacturer: e.component.manufacturer.map(|c| c.to_string()),
            application: e.application.map(|c| c.to_string()),
            project_id: e.project_id.map(|c| c.to_string()),
            user_id: e.user.id.to_string(),
            user_email: e.user.email.to_string(),
        })
        .collect()
}

fn export(c: &mut Criterion) {
    let batch = rows(1024);
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("csv_encode_1024_rows", |b| {
        let mut encoder = CsvEncoder::new();
        b.iter(|| black_box(encoder.rows(black_box(&batch))))
    });
    group.finish();
}

fn timestamps(c: &mut Criterion) {
    let t = Timestamp::parse("2024-05-14T09:31:12.345Z").unwrap_or_else(|_| Timestamp::now());
    c.bench_function("timestamp_parse", |b| {
        b.iter(|| Timestamp::parse(black_box("2024-05-14T09:31:12.345Z")))
    });
    c.bench_function("timestamp_format", |b| {
        let mut out = Vec::with_capacity(32);
        b.iter(|| {
            out.clear();
            black_box(t).write_wire(&mut out);
            black_box(out.len())
        })
    });
}

fn ingestion(c: &mut Criterion) {
    let library = DemoLibrary::generate(2, 200, 50);
    let events: Vec<_> = library
        .events(2, 1000, 90, Timestamp::now())
        .flatten()
        .map(|e| to_wire(&e))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap_or_default();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("parse_json_1000_events", |b| {
        b.iter(|| parse_json(black_box(&body)).map(|v| v.len()))
    });
    group.finish();
}

criterion_group!(benches, export, timestamps, ingestion);
criterion_main!(benches);
