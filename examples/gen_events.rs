//! Writes demo-library events as NDJSON, for `catalytics import` and the
//! benchmarks: `cargo run --release --example gen_events -- COUNT FILE [SEED]`.

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::ingest::to_wire;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .ok_or("usage: gen_events COUNT FILE [SEED]")?
        .parse()?;
    let path = args.next().ok_or("usage: gen_events COUNT FILE [SEED]")?;
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let library = DemoLibrary::generate(seed, 3000, 800);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    for batch in library.events(seed, count, 90, Timestamp::now()) {
        for e in &batch {
            serde_json::to_writer(&mut out, &to_wire(e))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    eprintln!(
        "wrote {count} events for organization {} to {path}",
        library.org
    );
    println!("{}", library.org);
    Ok(())
}
