//! Micro-benchmarks of the per-row and per-event hot paths:
//! the CSV row writer and the dictionary build (export), timestamp
//! parse/format, batch parsing (ingestion).

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::export::{ComponentNames, CsvWriter, Dictionary, DictionaryBuilder};
use catalytics::ingest::{parse_json, parse_ndjson, to_wire};
use catalytics::store::facts::Fingerprint;
use catalytics::store::sqlite::SqliteStore;
use catalytics::store::{EventRow, Store};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
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
    let mut ndjson = Vec::new();
    for event in &events {
        let _ = serde_json::to_writer(&mut ndjson, event);
        ndjson.push(b'\n');
    }
    group.bench_function("parse_ndjson_1000_events", |b| {
        b.iter(|| parse_ndjson(black_box(&ndjson)).map(|v| v.len()))
    });
    let parsed = parse_ndjson(&ndjson).unwrap_or_default();
    group.bench_function("fingerprint_1000_events", |b| {
        b.iter(|| black_box(&parsed).iter().map(Fingerprint::of).count())
    });
    group.finish();
}

/// Durable SQLite ingestion of 10,000 new events (random ids) per
/// iteration into a store that grows from 100,000 events: the writer's
/// whole transaction (lookups, decision, sorted inserts, commit with fsync).
fn sqlite_ingestion(c: &mut Criterion) {
    let (Ok(rt), Ok(dir)) = (tokio::runtime::Runtime::new(), tempfile::tempdir()) else {
        return;
    };
    let Ok(store) = rt.block_on(SqliteStore::open(&dir.path().join("bench.sqlite3"))) else {
        return;
    };
    let library = DemoLibrary::generate(3, 3000, 800);
    let mut seed = 0u64;
    let mut batch = |count: usize| {
        seed += 1;
        library
            .events(seed, count, 90, Timestamp::now())
            .flatten()
            .collect::<Vec<_>>()
    };
    for _ in 0..10 {
        let _ = rt.block_on(store.ingest(batch(10_000)));
    }
    let mut group = c.benchmark_group("sqlite_ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000_new_events", |b| {
        b.iter_batched(
            || batch(10_000),
            |events| rt.block_on(store.ingest(events)).map(|o| o.accepted),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, export, timestamps, ingestion, sqlite_ingestion);
criterion_main!(benches);
