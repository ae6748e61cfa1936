//! A writer killed with SIGKILL mid-append never leaves a log that fails to
//! verify once the next writer has opened it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use audit::{AuditLog, Entry, LogOptions, default_checkpoint_path, kinds, verify_log};

use crate::support::{intact, lines_of, signer};

/// The `append_loop` example, which `cargo test` builds next to the test
/// binaries: `target/<profile>/examples/append_loop`.
pub fn append_loop_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join(format!("append_loop{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test -p audit`, which builds the examples",
        binary.display()
    );
    binary
}

/// A kill only tears a line when it lands inside write(2), which is a small
/// part of an append (encoding and fsync take most of it). Memory-backed
/// storage, where fsync is cheap, makes that more likely; the page cache, and
/// so what a killed process leaves behind, behaves the same there.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn sigkill_mid_append_always_recovers_to_an_intact_log() {
    let dir = scratch_dir();
    let key = signer(1).verifying_key();
    let binary = append_loop_binary();
    let rounds: u64 = std::env::var("AUDIT_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let (mut recovered, mut simulated) = (0, 0);
    // A fresh log every ROUNDS_PER_LOG kills, so that the full verification
    // after each one stays cheap; each log takes that many kills in a row.
    const ROUNDS_PER_LOG: u64 = 20;
    let log_of = |round: u64| dir.path().join(format!("audit-{}.jsonl", round / ROUNDS_PER_LOG));
    for round in 0..rounds {
        let log_path = log_of(round);
        let checkpoint = default_checkpoint_path(&log_path);
        let mut child = Command::new(&binary)
            .arg(&log_path)
            .arg("forever")
            .arg("300000")
            .arg("1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "round {round}");
        // Vary the moment of death across rounds.
        std::thread::sleep(Duration::from_millis(3 + (round * 37) % 90));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child must have been killed");

        // Every other round also leaves what a kill inside write(2) leaves,
        // a prefix of a line without its newline, so that recovery is
        // exercised in this loop whatever the timing did.
        if round % 2 == 1 {
            let last = lines_of(&log_path).pop().unwrap_or_default();
            let cut = (last.len() * (round as usize % 7 + 1) / 8).max(1);
            let mut file = std::fs::OpenOptions::new().append(true).open(&log_path).unwrap();
            file.write_all(&last[..cut.min(last.len())]).unwrap();
            simulated += 1;
        }

        let mut log =
            AuditLog::open_with(&log_path, LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None })
                .unwrap();
        recovered += log.recoveries().len();
        // The Merkle state the kill left (never flushed by the writer) must
        // check out against the checkpoint, or be extended from the log.
        let signed = log.write_checkpoint(&signer(1)).unwrap();
        drop(log);
        let hashes = std::fs::metadata(audit::tree::hashes_path(&log_path)).unwrap().len();
        assert_eq!(hashes, audit::tree::stored_hash_count(signed.checkpoint.size) * 32, "round {round}");
        let report = intact(verify_log(&log_path, &checkpoint, &key).unwrap());
        assert_eq!(report.uncommitted_tail_bytes, 0, "round {round}");
        let last = signed.checkpoint.size - 1;
        let proof = audit::prove_inclusion(&log_path, &signed, last).unwrap();
        assert_eq!(audit::verify_inclusion_proof(&proof, &key).unwrap().entry.seq, last, "round {round}");
    }
    let recorded: usize = (0..rounds.div_ceil(ROUNDS_PER_LOG))
        .map(|segment| {
            lines_of(&log_of(segment * ROUNDS_PER_LOG))
                .iter()
                .filter(|line| Entry::from_line(line).unwrap().kind == kinds::AUDIT_RECOVERED)
                .count()
        })
        .sum();
    assert_eq!(recorded, recovered);
    assert!(recovered >= simulated);
    eprintln!(
        "{rounds} kills: {recovered} torn tails recovered, {} of them torn by the kill itself",
        recovered - simulated
    );
}
