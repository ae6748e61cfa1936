//! Appends COUNT events to a host's audit log in durable batches of BATCH
//! (one write, one fsync and one signed checkpoint per batch), the way a
//! busy node's writers do, and prints the rate. The benchmark script
//! `audit/benches/log_scale.sh` uses it to grow a log to 1,000,000 entries.
//!
//! Usage: `fill_log LOG HOST_KEY ORIGIN COUNT BATCH`. Writes the host key's
//! public half to `HOST_KEY.pub` for `guardian audit verify --log-key`.

use std::error::Error;
use std::time::Instant;

use audit::{Actor, Event, HostLog};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, log, host_key, origin, count, batch] = args.as_slice() else {
        return Err("usage: fill_log LOG HOST_KEY ORIGIN COUNT BATCH".into());
    };
    let (count, batch): (u64, u64) = (count.parse()?, batch.parse()?);
    let host = HostLog { log: log.into(), host_key: host_key.into(), origin: origin.clone() };
    let mut writer = host.open()?;
    let key = signer::keyfile::load_or_create_host_key(std::path::Path::new(host_key))?;
    std::fs::write(format!("{host_key}.pub"), key.public_key().to_file_text())?;
    let actor = Actor::new("runtime", "bench-node");
    let started = Instant::now();
    let mut written = 0;
    while written < count {
        let n = batch.min(count - written);
        let events: Vec<Event> = (written..written + n)
            .map(|i| {
                // About the size of a real run.finished entry.
                let Value::Object(data): Value = json!({
                    "tenant": format!("tenant-{}", i % 1000),
                    "version": 3,
                    "module_sha256": "9f2b5c0e7d4a1c3b8e6f0a2d4c6b8e0f1a3c5e7d9b1f3a5c7e9d1b3f5a7c9e1d",
                    "status": "exited",
                    "exit_code": 0,
                    "fuel_used": 123_456 + i,
                    "wall_ms": 4,
                }) else {
                    unreachable!()
                };
                Event::new("run.finished", actor.clone(), data)
            })
            .collect();
        writer.append_batch(&events)?;
        written += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("appended {written} entries in batches of {batch}: {:.0} entries/s durable", written as f64 / seconds);
    Ok(())
}
