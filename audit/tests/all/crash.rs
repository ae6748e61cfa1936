//! A writer killed with SIGKILL mid-append never leaves a log that fails to
//! verify once the next writer has opened it.

use std::io::{BufRead, BufReader};
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
    let (mut recovered, mut torn_by_hook) = (0usize, 0u64);
    // A fresh log every ROUNDS_PER_LOG kills, so that the full verification
    // after each one stays cheap; each log takes that many kills in a row.
    const ROUNDS_PER_LOG: u64 = 20;
    let log_of = |round: u64| dir.path().join(format!("audit-{}.jsonl", round / ROUNDS_PER_LOG));
    for round in 0..rounds {
        let log_path = log_of(round);
        let checkpoint = default_checkpoint_path(&log_path);
        // Every other round the writer stops inside its write (the library's
        // test hook) and is killed there, so a kill that tears a line is
        // certain; the other rounds die wherever the timing puts them.
        let inside_write = round % 2 == 1;
        let mut command = Command::new(&binary);
        command.arg(&log_path).arg("forever").arg("300000").arg("1").stdout(Stdio::piped());
        if inside_write {
            command.env(audit::TORN_WRITE_HOOK_ENV, "3");
        }
        let mut child = command.spawn().unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "round {round}");
        if inside_write {
            wait_for_a_torn_tail(&log_path, round);
        } else {
            // Vary the moment of death across rounds.
            std::thread::sleep(Duration::from_millis(3 + (round * 37) % 90));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child must have been killed");

        let mut log =
            AuditLog::open_with(&log_path, LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None })
                .unwrap();
        if inside_write {
            // The half-written line the kill left is what was recovered.
            assert_eq!(log.recoveries().len(), 1, "round {round}: a kill inside the write must leave a torn tail");
            torn_by_hook += 1;
        }
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
    assert_eq!(torn_by_hook, rounds / 2);
    eprintln!(
        "{rounds} kills: {recovered} torn tails recovered, {torn_by_hook} of them from kills inside the write, {} from kills at random moments",
        recovered as u64 - torn_by_hook
    );
}

/// Waits until the log ends inside a line and stays so: the writer has
/// written part of its lines and is paused by the test hook (a write(2) still
/// in progress also shows a partial line, but not for long).
fn wait_for_a_torn_tail(log: &Path, round: u64) {
    use std::io::{Read, Seek, SeekFrom};
    let torn_length = || {
        let mut file = std::fs::File::open(log).unwrap();
        let mut last = [0u8];
        let end = file.seek(SeekFrom::End(-1)).ok()?;
        file.read_exact(&mut last).ok()?;
        (last[0] != b'\n').then_some(end)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(length) = torn_length() {
            std::thread::sleep(Duration::from_millis(100));
            if torn_length() == Some(length) {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "round {round}: the writer never paused inside a write");
        std::thread::sleep(Duration::from_millis(2));
    }
}
