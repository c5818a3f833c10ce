//! `catalytics import FILE`: bulk-load NDJSON events straight into the
//! store, with the validation and idempotency of the HTTP operation.
//!
//! A reader thread parses and validates lines while the store commits the
//! previous batch, so both cores work. Invalid lines are reported with their
//! line number and skipped; valid events are committed in atomic batches of
//! [`IMPORT_BATCH`], so an interrupted import leaves whole batches only and
//! can simply be run again (stored events then count as duplicates).
//!
//! The summary counts accepted events, duplicates and conflicts (DESIGN
//! §3.1) and names the first conflicting ids. Only rejected lines make the
//! command fail: they are defects of the file that a fixed file can cure,
//! whereas a conflict means the store already holds another version of
//! that event, which no re-run can change (see `docs/decisions.md`).

use crate::config::Settings;
use crate::domain::Event;
use crate::domain::Problem;
use crate::ingest::parse_line;
use crate::store::IngestOutcome;
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::mpsc;

/// Events per import transaction: large, because each transaction reads and
/// updates the dimension rows its events name (thousands of components and
/// users), and a random id dirties fewer index pages per event in a larger
/// transaction. Two chunks are in memory at once (about 230 MiB for the
/// bench's events).
pub const IMPORT_BATCH: usize = 50_000;
/// Rejected lines printed in full; the rest are only counted.
const MAX_REPORTED: usize = 100;

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// NDJSON file, one event per line; `-` reads standard input.
    pub file: PathBuf,
}

/// What the reader thread hands over.
enum Chunk {
    Events(Vec<Event>, u64),
    Rejected(usize, Vec<Problem>),
    Failed(String),
}

/// Runs the import and prints one summary line.
pub async fn run(settings: &Settings, args: &ImportArgs) -> anyhow::Result<()> {
    without_fast_bins();
    let store = crate::store::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    let (input, size): (Box<dyn Read + Send>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let progress = progress_bar(size);
    // One chunk parsed ahead while the store commits the previous one.
    let (tx, mut rx) = mpsc::channel::<Chunk>(1);
    let reader = std::thread::spawn(move || read_lines(input, &tx));

    let started = Instant::now();
    let mut total = IngestOutcome::default();
    let (mut rejected, mut lines) = (0usize, 0u64);
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Chunk::Events(events, bytes) => {
                lines += events.len() as u64;
                total += store
                    .ingest(events)
                    .await
                    .context("store refused a batch; earlier batches are committed")?;
                progress.set_position(bytes);
            }
            Chunk::Rejected(line, details) => {
                rejected += 1;
                lines += 1;
                if rejected <= MAX_REPORTED {
                    let reasons: Vec<String> = details
                        .iter()
                        .map(|d| format!("{}: {}", d.target, d.message))
                        .collect();
                    progress.suspend(|| eprintln!("line {line}: rejected: {}", reasons.join("; ")));
                }
            }
            Chunk::Failed(why) => anyhow::bail!("cannot read {}: {why}", args.file.display()),
        }
    }
    let _ = reader.join();
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {}: {lines} lines, {} accepted, {} duplicates, {} conflicts, {rejected} rejected in {secs:.1}s ({:.0} events/s)",
        args.file.display(),
        total.accepted,
        total.duplicates,
        total.conflicts,
        (total.accepted + total.duplicates + total.conflicts) as f64 / secs.max(1e-9)
    );
    if total.conflicts > 0 {
        tracing::warn!(
            conflicts = total.conflicts,
            "events whose id is stored with other facts were not stored"
        );
        let ids: Vec<String> = total.conflicting.iter().map(ToString::to_string).collect();
        eprintln!(
            "{} events conflict with stored events of the same id and were not stored; {}: {}",
            total.conflicts,
            if total.conflicts > ids.len() as u64 {
                "the first"
            } else {
                "their ids"
            },
            ids.join(", ")
        );
    }
    if rejected > MAX_REPORTED {
        eprintln!(
            "({} more rejected lines not shown)",
            rejected - MAX_REPORTED
        );
    }
    anyhow::ensure!(
        rejected == 0,
        "{rejected} lines were rejected (see above); all other events were imported"
    );
    Ok(())
}

/// Turns off glibc's fast bins for this process. Each chunk handed back
/// by the store frees about half a million small strings; held in fast
/// bins, they are walked again by `malloc_consolidate` whenever a large
/// buffer is freed, which cost about a tenth of the parsing thread's time.
/// Without fast bins a small free coalesces at once. (Only glibc has them;
/// `mallopt` cannot fail in a way that matters: it is a tuning.)
fn without_fast_bins() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator tuning; M_MXFAST = 0 is a
    // documented value, set before the import allocates its chunks.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match size {
        Some(len) => {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => ProgressBar::new_spinner(),
    }
}

/// Parses the input line by line on a plain thread, sending full batches.
fn read_lines(input: Box<dyn Read + Send>, tx: &mpsc::Sender<Chunk>) {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let (mut line_no, mut bytes) = (0usize, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => {
                let _ = tx.blocking_send(Chunk::Failed(e.to_string()));
                return;
            }
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = parse_line(&buf, line_no, || format!("line {line_no}"));
        let sent = match parsed {
            Ok(event) => {
                batch.push(event);
                batch.len() < IMPORT_BATCH
                    || tx
                        .blocking_send(Chunk::Events(std::mem::take(&mut batch), bytes))
                        .is_ok()
            }
            Err(details) => tx.blocking_send(Chunk::Rejected(line_no, details)).is_ok(),
        };
        if !sent {
            return; // the importer stopped (store failure); it reports why
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Chunk::Events(batch, bytes));
    }
}
