//! Torn tails are moved aside and recorded; committed lines are never cut.

use std::io::Write;

use audit::{AuditError, AuditLog, Entry, Sha256Hash, TamperReason, kinds};
use sha2::{Digest, Sha256};

use crate::support::{Fixture, event, intact, tampered};

fn append_raw(f: &Fixture, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(&f.log).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn torn_tail_is_saved_cut_and_recorded() {
    let f = Fixture::with_entries(5);
    let committed = std::fs::read(&f.log).unwrap();
    // Half of a line, as a write cut short by a crash leaves it.
    let torn = f.lines()[4][..60].to_vec();
    append_raw(&f, &torn);

    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncommitted_tail_bytes), (5, 60));

    let log = f.open_signed();
    let recovery = log.recoveries().first().cloned().expect("a recovery");
    assert_eq!((recovery.seq, recovery.offset, recovery.length), (5, committed.len() as u64, 60));
    assert_eq!(recovery.sha256, Sha256Hash(Sha256::digest(&torn).into()));
    assert_eq!(std::fs::read(&recovery.saved_to).unwrap(), torn);
    assert!(recovery.saved_to.file_name().unwrap().to_string_lossy().starts_with("audit.jsonl.recovered-"));

    // The committed bytes are untouched and the recovery is the next entry.
    let now = std::fs::read(&f.log).unwrap();
    assert_eq!(&now[..committed.len()], &committed[..]);
    let entry = Entry::from_line(&f.lines()[5]).unwrap();
    assert_eq!(entry.kind, kinds::AUDIT_RECOVERED);
    assert_eq!(entry.data["length"], 60);
    assert_eq!(entry.data["offset"], committed.len() as u64);
    assert_eq!(entry.data["sha256"], recovery.sha256.to_hex());

    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncommitted_tail_bytes), (6, 0));
    assert_eq!(report.uncheckpointed_entries, 1, "opening does not checkpoint");
}

#[test]
fn torn_first_line_is_recovered() {
    let f = Fixture::new();
    std::fs::write(&f.log, b"{\"actor\":{\"bin").unwrap();
    let mut log = AuditLog::open(&f.log).unwrap();
    assert_eq!(log.recoveries().len(), 1);
    log.append(&event(1)).unwrap();
    let entries: Vec<Entry> = f.lines().iter().map(|l| Entry::from_line(l).unwrap()).collect();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].seq, entries[0].kind.as_str()), (0, kinds::AUDIT_RECOVERED));
    assert_eq!(entries[1].prev, entries[0].hash);
}

#[test]
fn torn_tail_left_by_another_writer_is_recovered_at_append() {
    let f = Fixture::with_entries(3);
    let mut log = f.open_signed();
    // Another process crashes mid-write while this handle is open.
    append_raw(&f, b"{\"actor\":");
    let receipt = log.append(&event(3)).unwrap();
    assert_eq!(log.recoveries().len(), 1);
    assert_eq!(receipt.seq, 4, "the recovery entry took seq 3");
    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncheckpointed_entries), (5, 0));
}

#[test]
fn complete_but_unparsable_last_line_is_not_cut() {
    let f = Fixture::with_entries(3);
    append_raw(&f, b"garbage that ends in a newline\n");
    let before = std::fs::read(&f.log).unwrap();
    match AuditLog::open(&f.log) {
        Err(AuditError::CorruptTail { offset, .. }) => assert_eq!(offset, before.len() as u64 - 31),
        other => panic!("expected CorruptTail, got {other:?}"),
    }
    assert_eq!(std::fs::read(&f.log).unwrap(), before);
    let t = tampered(f.verify());
    assert!(matches!(t.reason, TamperReason::MalformedLine { line: 4, .. }), "{t}");
}

#[test]
fn edited_last_line_is_not_extended() {
    let f = Fixture::with_entries(3);
    let mut lines = f.lines();
    let text = String::from_utf8(lines[2].clone()).unwrap().replace("tenant-2", "tenant-9");
    lines[2] = text.into_bytes();
    f.set_lines(&lines);
    match AuditLog::open(&f.log) {
        Err(AuditError::Tampered { tampering, .. }) => {
            assert_eq!(tampering.first_bad_seq, Some(2));
            assert!(matches!(tampering.reason, TamperReason::EditedEntry { .. }));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn log_shrinking_under_an_open_writer_is_refused() {
    let f = Fixture::with_entries(3);
    let mut log = AuditLog::open(&f.log).unwrap();
    log.append(&event(3)).unwrap();
    let lines = f.lines();
    f.set_lines(&lines[..1]);
    assert!(matches!(log.append(&event(4)), Err(AuditError::LogShrank { .. })));
}

#[test]
fn appends_by_another_writer_are_checked_before_extending() {
    let f = Fixture::with_entries(3);
    let mut log = AuditLog::open(&f.log).unwrap();
    // Someone appends a line that does not chain.
    let (line, _) = crate::support::forge_line(3, Sha256Hash([5; 32]), serde_json::json!({}));
    append_raw(&f, &[line, b"\n".to_vec()].concat());
    match log.append(&event(4)) {
        Err(AuditError::Tampered { tampering, .. }) => {
            assert_eq!((tampering.first_bad_seq, tampering.reason), (Some(3), TamperReason::ChainBroken));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_checkpointed_entry_that_lost_its_newline_is_tampering_not_a_torn_tail() {
    // `truncate -s -1 audit.log`: the last entry is whole but its newline is
    // gone. It looks like a torn write, but the checkpoint covers it, so it
    // was committed: cutting it would destroy history.
    let f = Fixture::with_entries(5);
    let full = std::fs::read(&f.log).unwrap();
    std::fs::write(&f.log, &full[..full.len() - 1]).unwrap();
    let before = std::fs::read(&f.log).unwrap();
    for open in [AuditLog::open(&f.log).map(drop), f.try_open_signed().map(drop)] {
        match open {
            Err(AuditError::Tampered { tampering, .. }) => {
                assert_eq!(tampering.first_bad_seq, Some(4), "{tampering}");
                assert_eq!(
                    tampering.reason,
                    TamperReason::CheckpointedTailCut { complete: 4, checkpoint_size: 5 },
                    "{tampering}"
                );
            }
            other => panic!("expected tampering, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read(&f.log).unwrap(), before, "nothing was cut");
    let leftovers: Vec<_> = std::fs::read_dir(f.log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("recovered"))
        .collect();
    assert!(leftovers.is_empty(), "nothing was moved aside: {leftovers:?}");
    // A verifier says the same: the checkpoint covers more than the log holds.
    let t = tampered(f.verify());
    assert!(matches!(t.reason, TamperReason::Truncated { log_entries: 4, checkpoint_size: 5 }), "{t}");
}

#[test]
fn a_fifo_as_the_log_or_the_checkpoint_is_refused_without_blocking() {
    let f = Fixture::with_entries(2);
    let checkpoint = audit::default_checkpoint_path(&f.log);
    std::fs::remove_file(&checkpoint).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&checkpoint).status().unwrap().success());
    let started = std::time::Instant::now();
    let err = f.open_signed().append(&event(2)).unwrap_err();
    let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("not a regular file"), "{err}: {source}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the FIFO did not block");
    std::fs::remove_file(&checkpoint).unwrap();
    std::fs::remove_file(&f.log).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&f.log).status().unwrap().success());
    let err = AuditLog::open(&f.log).map(drop).unwrap_err();
    let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("a FIFO, not a regular file"), "{err}: {source}");
    std::fs::remove_file(&f.log).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &f.log).unwrap();
    assert!(AuditLog::open(&f.log).is_err(), "a link to /dev/zero is not followed");
}
