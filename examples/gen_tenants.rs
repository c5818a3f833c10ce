//! Writes NDJSON events for many small organizations, to check that one
//! organization's downloads do not slow down as others are added:
//! `cargo run --release --example gen_tenants -- ORGS EVENTS_PER_ORG FILE`.

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::ingest::to_wire;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gen_tenants ORGS EVENTS_PER_ORG FILE";
    let mut args = std::env::args().skip(1);
    let orgs: u64 = args.next().ok_or(usage)?.parse()?;
    let per_org: usize = args.next().ok_or(usage)?.parse()?;
    let path = args.next().ok_or(usage)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let now = Timestamp::now();
    for i in 0..orgs {
        // Seeds far from the benchmark organization's (42).
        let seed = 1_000_000 + i;
        let library = DemoLibrary::generate(seed, 5, 3);
        for batch in library.events(seed, per_org, 90, now) {
            for e in &batch {
                serde_json::to_writer(&mut out, &to_wire(e))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    eprintln!("wrote {per_org} events for each of {orgs} organizations to {path}");
    Ok(())
}
