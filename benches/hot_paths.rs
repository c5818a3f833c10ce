//! Micro-benchmarks of the per-row and per-event hot paths:
//! the CSV row writer and the dictionary build (export), timestamp
//! parse/format, batch parsing (ingestion).

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::export::{ComponentNames, CsvWriter, Dictionary, DictionaryBuilder};
use catalytics::ingest::{parse_json, to_wire};
use catalytics::store::EventRow;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

/// The benchmark library's size (as `examples/gen_events`).
const COMPONENTS: usize = 3000;
const USERS: usize = 800;

/// The names of the demo library as the stores hand them over, keyed by
/// position.
fn build_dictionary(library: &DemoLibrary, labels: &[String]) -> Dictionary {
    let mut b = DictionaryBuilder::new();
    for (key, (c, label)) in library.components.iter().zip(labels).enumerate() {
        b.component(
            key as i64,
            ComponentNames {
                id: c.id.as_str(),
                name: c.display_name.as_str(),
                catalogs: Some(label.as_str()).filter(|l| !l.is_empty()),
                category: c.category.as_ref().map(|n| n.as_str()),
                manufacturer: c.manufacturer.as_ref().map(|n| n.as_str()),
            },
        );
    }
    for (key, u) in library.users.iter().enumerate() {
        b.user(key as i64, u.id.as_str(), u.email.as_str());
    }
    for (key, a) in library.applications.iter().enumerate() {
        b.application(key as i64, a.as_str());
    }
    for (key, p) in library.projects.iter().enumerate() {
        b.project(key as i64, p.as_str());
    }
    b.build()
}

fn export(c: &mut Criterion) {
    let library = DemoLibrary::generate(1, COMPONENTS, USERS);
    let labels: Vec<String> = library
        .components
        .iter()
        .map(|c| {
            let mut names: Vec<&str> = c.catalogs.iter().map(|k| k.display_name.as_str()).collect();
            names.sort_unstable();
            names.join("; ")
        })
        .collect();
    let rows: Vec<EventRow> = library
        .events(1, 1024, 90, Timestamp::now())
        .flatten()
        .enumerate()
        .map(|(i, e)| EventRow {
            timestamp: e.timestamp,
            kind: e.kind,
            component: (i * 7 % COMPONENTS) as i64,
            user: (i * 13 % USERS) as i64,
            application: e
                .application
                .map(|_| (i % library.applications.len()) as i64),
            project: e.project_id.map(|_| (i % library.projects.len()) as i64),
        })
        .collect();
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(rows.len() as u64));
    let dictionary = Arc::new(build_dictionary(&library, &labels));
    group.bench_function("write_1024_rows", |b| {
        let mut writer = CsvWriter::new(Arc::clone(&dictionary));
        b.iter(|| black_box(writer.rows(black_box(&rows)).map(|chunk| chunk.len())))
    });
    group.throughput(Throughput::Elements((COMPONENTS + USERS) as u64));
    group.bench_function("dictionary_build_3000_components_800_users", |b| {
        b.iter(|| black_box(build_dictionary(black_box(&library), &labels)).size_bytes())
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
