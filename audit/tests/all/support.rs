//! Shared fixtures: deterministic keys, events, and a forger that writes
//! entries with arbitrary fields through the public `Entry` API, the way an
//! attacker with write access to the file could.

use std::path::{Path, PathBuf};

use audit::{
    Actor, AuditLog, CheckpointSigner, Entry, Event, LogOptions, Sha256Hash, VerifyReport, default_checkpoint_path,
    verify_log,
};
use ed25519_dalek::SigningKey;
use serde_json::{Map, Value, json};
use tempfile::TempDir;

pub const ORIGIN: &str = "nightcore.test/audit";

pub fn signer(seed: u8) -> CheckpointSigner {
    CheckpointSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn event(i: u64) -> Event {
    Event::new(
        "run.finished",
        Actor::new("runtime", "node-1"),
        object(json!({"tenant": format!("tenant-{i}"), "status": i})),
    )
}

pub struct Fixture {
    /// Held so the directory lives as long as the fixture.
    _dir: TempDir,
    pub log: PathBuf,
    pub checkpoint: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let checkpoint = default_checkpoint_path(&log);
        Fixture { _dir: dir, log, checkpoint }
    }

    /// A log of `n` entries appended one by one, checkpointed by key 1.
    pub fn with_entries(n: u64) -> Self {
        let fixture = Fixture::new();
        let mut log = fixture.open_signed();
        for i in 0..n {
            log.append(&event(i)).unwrap();
        }
        fixture
    }

    pub fn open_signed(&self) -> AuditLog {
        self.try_open_signed().unwrap()
    }

    pub fn try_open_signed(&self) -> Result<AuditLog, audit::AuditError> {
        AuditLog::open_with(&self.log, LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None })
    }

    pub fn verify(&self) -> VerifyReport {
        verify_log(&self.log, &self.checkpoint, &signer(1).verifying_key()).unwrap()
    }

    pub fn lines(&self) -> Vec<Vec<u8>> {
        lines_of(&self.log)
    }

    pub fn set_lines(&self, lines: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        std::fs::write(&self.log, bytes).unwrap();
    }
}

pub fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    bytes.split_inclusive(|&b| b == b'\n').map(|l| l.strip_suffix(b"\n").unwrap_or(l).to_vec()).collect()
}

/// A correctly hashed line with the given fields.
pub fn forge_line(seq: u64, prev: Sha256Hash, data: Value) -> (Vec<u8>, Sha256Hash) {
    forge_entry(Entry {
        actor: Actor::new("mallory", "elsewhere"),
        data: object(data),
        hash: Sha256Hash::ZERO,
        kind: "run.finished".into(),
        prev,
        seq,
        time: time::macros::datetime!(2026-11-29 10:00:00 UTC),
    })
}

pub fn forge_entry(mut entry: Entry) -> (Vec<u8>, Sha256Hash) {
    entry.hash = entry.computed_hash().unwrap();
    (entry.to_line().unwrap(), entry.hash)
}

pub fn intact(report: VerifyReport) -> audit::IntactLog {
    match report {
        VerifyReport::Intact(intact) => intact,
        VerifyReport::Tampered(t) => panic!("expected an intact log, got: {t}"),
    }
}

pub fn tampered(report: VerifyReport) -> audit::Tampering {
    match report {
        VerifyReport::Tampered(t) => t,
        VerifyReport::Intact(i) => panic!("expected tampering, got an intact log: {i:?}"),
    }
}
