//! Criterion benchmarks of the audit log: appends per second with one fsync
//! per entry and with batching, verification speed over a 1,000,000-entry
//! log, and proof size and time at that size.
//!
//! The million-entry log is generated once per run in a temporary directory
//! (about 0.4 GB). Run briefly: `cargo bench -p audit -- --quick`.

// A benchmark is test code: any failure should stop the run loudly.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use audit::{
    Actor, AuditLog, AuditProof, CheckpointSigner, Event, OldTree, SignedCheckpoint, VerifyReport, load_checkpoint,
    prove_consistency, prove_inclusion, verify_consistency_proof, verify_inclusion_proof, verify_log,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

const MILLION: u64 = 1_000_000;

fn signer() -> CheckpointSigner {
    CheckpointSigner::new("nightcore.bench/audit", SigningKey::from_bytes(&[7; 32])).unwrap()
}

/// A typical `run.finished` event: about 380 bytes as a line.
fn event(i: u64) -> Event {
    let Value::Object(data) = json!({
        "tenant": format!("tenant-{}", i % 97),
        "module": format!("{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "status": i % 3,
        "fuel_consumed": i * 1_000 + 17,
        "duration_ms": i % 5_000,
    }) else {
        unreachable!()
    };
    Event::new("run.finished", Actor::new("runtime", "node-1"), data)
}

struct BigLog {
    _dir: tempfile::TempDir,
    log: PathBuf,
    checkpoint: PathBuf,
}

fn big_log() -> &'static BigLog {
    static LOG: OnceLock<BigLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("million.jsonl");
        let started = Instant::now();
        let mut log = AuditLog::open(&path).unwrap();
        let mut i = 0;
        while i < MILLION {
            let batch: Vec<Event> = (i..(i + 10_000).min(MILLION)).map(event).collect();
            log.append_batch(&batch).unwrap();
            i += batch.len() as u64;
        }
        log.write_checkpoint(&signer()).unwrap();
        let bytes = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "generated {MILLION} entries ({:.0} MB) in {:.1} s",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        BigLog { checkpoint: log.checkpoint_path().to_path_buf(), log: path, _dir: dir }
    })
}

fn appends(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("append");
    group.sample_size(20);

    let mut plain = AuditLog::open(dir.path().join("plain.jsonl")).unwrap();
    let one = event(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("fsync_per_entry", |b| b.iter(|| plain.append(&one).unwrap()));

    let mut checkpointed = AuditLog::open_with(
        dir.path().join("checkpointed.jsonl"),
        audit::LogOptions { checkpoint_signer: Some(signer()), checkpoint_path: None },
    )
    .unwrap();
    group.bench_function("fsync_per_entry_and_checkpoint", |b| b.iter(|| checkpointed.append(&one).unwrap()));

    let batch: Vec<Event> = (0..100).map(event).collect();
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100_one_fsync", |b| b.iter(|| plain.append_batch(&batch).unwrap()));
    group.finish();
}

fn verification(c: &mut Criterion) {
    let big = big_log();
    let key = signer().verifying_key();
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MILLION));
    group.bench_function("verify_log_1m_entries", |b| {
        b.iter(|| {
            let report = verify_log(&big.log, &big.checkpoint, &key).unwrap();
            assert!(matches!(report, VerifyReport::Intact(_)));
        })
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let big = big_log();
    let key = signer().verifying_key();
    let checkpoint: SignedCheckpoint = load_checkpoint(&big.checkpoint).unwrap();
    let inclusion = prove_inclusion(&big.log, &checkpoint, MILLION / 2).unwrap();
    let consistency = prove_consistency(&big.log, &checkpoint, MILLION - 1_000).unwrap();
    let inclusion_json = serde_json::to_string(&AuditProof::Inclusion(inclusion.clone())).unwrap();
    let consistency_json = serde_json::to_string(&AuditProof::Consistency(consistency.clone())).unwrap();
    eprintln!(
        "at {MILLION} entries: inclusion proof {} hashes ({} bytes raw, {} bytes as JSON with entry and checkpoint); consistency proof {} hashes ({} bytes raw, {} bytes as JSON)",
        inclusion.path.len(),
        inclusion.path.len() * 32,
        inclusion_json.len(),
        consistency.path.len(),
        consistency.path.len() * 32,
        consistency_json.len()
    );

    let mut group = c.benchmark_group("proof_1m");
    group.sample_size(10);
    group
        .bench_function("prove_inclusion", |b| b.iter(|| prove_inclusion(&big.log, &checkpoint, MILLION / 2).unwrap()));
    group.bench_function("prove_consistency", |b| {
        b.iter(|| prove_consistency(&big.log, &checkpoint, MILLION - 1_000).unwrap())
    });
    group.bench_function("verify_inclusion", |b| b.iter(|| verify_inclusion_proof(&inclusion, &key).unwrap()));
    group.bench_function("verify_consistency", |b| {
        b.iter(|| verify_consistency_proof(&consistency, &key, OldTree::DangerouslyUnanchored).unwrap())
    });
    group.finish();
}

criterion_group!(benches, appends, verification, proofs);
criterion_main!(benches);
