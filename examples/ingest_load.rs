//! HTTP ingestion load: posts unique demo events (random v4 ids) in NDJSON
//! batches over several connections and reports events/s.
//! `cargo run --release --example ingest_load -- ADDR TOKEN TOTAL [BATCH] [CONCURRENCY]`

use catalytics::demo::DemoLibrary;
use catalytics::domain::Timestamp;
use catalytics::ingest::to_wire;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ingest_load ADDR TOKEN TOTAL [BATCH] [CONCURRENCY]";
    let addr = args.first().ok_or(usage)?.clone();
    let token = args.get(1).ok_or(usage)?.clone();
    let total: usize = args.get(2).ok_or(usage)?.parse()?;
    let batch: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let concurrency: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(4);

    // Pre-build every body so the client measures the server, not itself.
    let library = DemoLibrary::generate(7, 200, 50);
    let bodies: Vec<Vec<u8>> = library
        .events(7, total, 90, Timestamp::now())
        .flat_map(|events| {
            events
                .chunks(batch)
                .map(|c| {
                    let mut body = Vec::new();
                    for event in c {
                        // Serializing a plain struct cannot fail.
                        let _ = serde_json::to_writer(&mut body, &to_wire(event));
                        body.push(b'\n');
                    }
                    body
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/library/components/analytics/events");
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, queue) =
            (client.clone(), url.clone(), token.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().await.next() else {
                    break;
                };
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let v: serde_json::Value = response.json().await?;
                if !status.is_success() {
                    return Err(format!("{status}: {v}").into());
                }
                accepted += v["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(accepted)
        }));
    }
    let mut accepted = 0;
    for w in workers {
        accepted += w.await?.map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingested {accepted} events in {secs:.2}s over HTTP ({batch}-event batches, {concurrency} connections): {:.0} events/s",
        accepted as f64 / secs
    );
    Ok(())
}
