//! A writer that appends to an audit log in a loop: the child process of the
//! crash and concurrency tests (`cargo test` builds it), and a small load
//! generator by hand.
//!
//! Usage: `append_loop LOG COUNT|forever PAYLOAD_BYTES [CHECKPOINT_SEED]`;
//! with `APPEND_LOOP_START_ON_STDIN` set it opens the log, then waits for a
//! line on stdin before its first append.
//! It prints `ready` once its first append is durable, so a test knows it is
//! killing a process that is really appending. Batches of 1 to 8 events with
//! payloads up to PAYLOAD_BYTES make each write span many pages, so a SIGKILL
//! regularly lands inside one.

use std::error::Error;
use std::io::Write;

use audit::{Actor, AuditLog, CheckpointSigner, Event, LogOptions};
use ed25519_dalek::SigningKey;
use serde_json::{Map, Value};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, log, count, payload, rest @ ..] = args.as_slice() else {
        return Err("usage: append_loop LOG COUNT|forever PAYLOAD_BYTES [CHECKPOINT_SEED]".into());
    };
    let count: Option<u64> = match count.as_str() {
        "forever" => None,
        n => Some(n.parse()?),
    };
    let payload: usize = payload.parse()?;
    let mut options = LogOptions::default();
    if let Some(seed) = rest.first() {
        let seed: u8 = seed.parse()?;
        options.checkpoint_signer =
            Some(CheckpointSigner::new("nightcore.test/audit", SigningKey::from_bytes(&[seed; 32]))?);
    }
    let mut log = AuditLog::open_with(log, options)?;
    if std::env::var_os("APPEND_LOOP_START_ON_STDIN").is_some() {
        // A start barrier for tests that need writers to overlap: begin only
        // when the parent writes a line, after it has started every writer.
        std::io::stdin().read_line(&mut String::new())?;
    }
    let actor = Actor::new("append_loop", format!("pid-{}", std::process::id()));
    // A cheap deterministic generator: the payload sizes only need to vary.
    let mut state = u64::from(std::process::id()) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0u64;
    let mut announced = false;
    while count.is_none_or(|n| written < n) {
        let remaining = count.map_or(u64::MAX, |n| n - written);
        let batch = (next() % 8 + 1).min(remaining);
        let events: Vec<Event> = (0..batch)
            .map(|i| {
                let size = if payload == 0 { 0 } else { (next() as usize) % payload };
                let mut data = Map::new();
                data.insert("writer".into(), Value::from(std::process::id()));
                data.insert("n".into(), Value::from(written + i));
                data.insert("payload".into(), Value::from("x".repeat(size)));
                Event::new("test.appended", actor.clone(), data)
            })
            .collect();
        if batch == 1 {
            log.append(&events[0])?;
        } else {
            log.append_batch(&events)?;
        }
        written += batch;
        if !announced {
            println!("ready");
            std::io::stdout().flush()?;
            announced = true;
        }
    }
    Ok(())
}
