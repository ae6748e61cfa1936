//! Each kind of tampering is reported with the right first bad seq and the
//! exact reason.

use audit::{AppendDefect, AuditError, AuditLog, Entry, Sha256Hash, TamperReason, VerifyReport, verify_log};
use serde_json::json;

use crate::support::{Fixture, event, forge_entry, forge_line, intact, signer, tampered};

#[test]
fn untouched_log_is_intact() {
    let f = Fixture::with_entries(10);
    let report = intact(f.verify());
    assert_eq!(report.entries, 10);
    assert_eq!(report.uncheckpointed_entries, 0);
    assert_eq!(report.uncommitted_tail_bytes, 0);
    let checkpoint = report.checkpoint.unwrap();
    assert_eq!((checkpoint.size, checkpoint.root), (10, report.root));
    let last = Entry::from_line(&f.lines()[9]).unwrap();
    assert_eq!(report.last_hash, last.hash);
}

#[test]
fn empty_log_without_checkpoint_is_intact() {
    let f = Fixture::new();
    drop(AuditLog::open(&f.log).unwrap());
    let report = intact(f.verify());
    assert_eq!(report.entries, 0);
    assert_eq!(report.checkpoint, None);
}

#[test]
fn one_byte_edited_in_a_middle_entry() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    let text = String::from_utf8(lines[5].clone()).unwrap();
    let edited = text.replace("tenant-5", "tenant-6");
    assert_eq!(edited.len(), text.len());
    lines[5] = edited.into_bytes();
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(5));
    assert!(matches!(t.reason, TamperReason::EditedEntry { .. }), "{t}");
}

#[test]
fn byte_edit_that_breaks_the_json_is_a_malformed_line() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    lines[3][0] = b'[';
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(3));
    assert!(matches!(t.reason, TamperReason::MalformedLine { line: 4, .. }), "{t}");
}

#[test]
fn entry_deleted() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    lines.remove(4);
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(4));
    assert_eq!(t.reason, TamperReason::MissingEntry { found_seq: 5 });
}

#[test]
fn two_entries_swapped() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    lines.swap(3, 4);
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(3));
    assert_eq!(t.reason, TamperReason::Reordered { found_seq: 4 });
}

#[test]
fn entry_duplicated() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    let copy = lines[4].clone();
    lines.insert(5, copy);
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(5));
    assert_eq!(t.reason, TamperReason::DuplicateEntry { found_seq: 4 });
}

#[test]
fn entry_rewritten_and_rehashed_breaks_the_chain_after_it() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    let mut entry = Entry::from_line(&lines[5]).unwrap();
    entry.data.insert("status".into(), json!(0));
    lines[5] = forge_entry(entry).0;
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(6));
    assert_eq!(t.reason, TamperReason::ChainBroken);
}

#[test]
fn tail_truncated() {
    let f = Fixture::with_entries(10);
    let lines = f.lines();
    f.set_lines(&lines[..7]);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(7));
    assert_eq!(t.reason, TamperReason::Truncated { log_entries: 7, checkpoint_size: 10 });
}

#[test]
fn forged_append_with_a_wrong_hash() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    let last = Entry::from_line(&lines[9]).unwrap();
    // A plausible next entry whose hash was made up rather than computed.
    let (line, _) = forge_line(10, last.hash, json!({"tenant": "evil"}));
    let text = String::from_utf8(line).unwrap();
    let entry = Entry::from_line(text.as_bytes()).unwrap();
    lines.push(text.replace(&entry.hash.to_hex(), &Sha256Hash([0xee; 32]).to_hex()).into_bytes());
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(10));
    assert_eq!(t.reason, TamperReason::ForgedAppend { checkpoint_size: 10, defect: AppendDefect::HashMismatch });
}

#[test]
fn forged_append_that_does_not_chain() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    lines.push(forge_line(10, Sha256Hash([1; 32]), json!({"tenant": "evil"})).0);
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(10));
    assert_eq!(t.reason, TamperReason::ForgedAppend { checkpoint_size: 10, defect: AppendDefect::ChainBroken });
}

/// The limit of what a log can show by itself: an appended entry with a
/// correctly computed hash and link is indistinguishable from a genuine one
/// written before a crash. It is reported as not covered by the checkpoint.
#[test]
fn correctly_forged_append_is_reported_as_uncheckpointed() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    let last = Entry::from_line(&lines[9]).unwrap();
    lines.push(forge_line(10, last.hash, json!({"tenant": "evil"})).0);
    f.set_lines(&lines);
    let report = intact(f.verify());
    assert_eq!((report.entries, report.uncheckpointed_entries), (11, 1));
}

#[test]
fn older_copy_restored() {
    let f = Fixture::with_entries(6);
    let older = std::fs::read(&f.log).unwrap();
    let mut log = f.open_signed();
    for i in 6..10 {
        log.append(&event(i)).unwrap();
    }
    drop(log);
    std::fs::write(&f.log, older).unwrap();
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(6));
    assert_eq!(t.reason, TamperReason::Truncated { log_entries: 6, checkpoint_size: 10 });
}

/// An older copy restored and then appended to chains perfectly; only the
/// checkpoint's root shows that its first entries are not the signed ones.
#[test]
fn older_copy_restored_and_extended() {
    let f = Fixture::with_entries(6);
    let older = std::fs::read(&f.log).unwrap();
    let mut log = f.open_signed();
    for i in 6..10 {
        log.append(&event(i)).unwrap();
    }
    drop(log);
    std::fs::write(&f.log, older).unwrap();
    // A writer without the checkpoint key extends the restored copy.
    let mut unsigned = AuditLog::open(&f.log).unwrap();
    for i in 100..105 {
        unsigned.append(&event(i)).unwrap();
    }
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, None);
    assert!(matches!(t.reason, TamperReason::CheckpointRootMismatch { size: 10, .. }), "{t}");

    // A writer holding the key refuses to re-sign this history.
    let mut signed =
        AuditLog::open_with(&f.log, audit::LogOptions { checkpoint_signer: Some(signer(1)), checkpoint_path: None })
            .unwrap();
    match signed.append(&event(200)) {
        Err(AuditError::Tampered { tampering, .. }) => {
            assert!(matches!(tampering.reason, TamperReason::CheckpointRootMismatch { size: 10, .. }));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn writer_refuses_to_extend_a_truncated_log() {
    let f = Fixture::with_entries(10);
    let lines = f.lines();
    f.set_lines(&lines[..4]);
    let mut log = f.open_signed();
    match log.append(&event(99)) {
        Err(AuditError::Tampered { tampering, .. }) => {
            assert_eq!(tampering.reason, TamperReason::Truncated { log_entries: 4, checkpoint_size: 10 })
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(f.lines().len(), 4, "nothing may be appended");
}

#[test]
fn forged_checkpoint() {
    let f = Fixture::with_entries(10);
    let text = std::fs::read_to_string(&f.checkpoint).unwrap();
    std::fs::write(&f.checkpoint, text.replacen("\n10\n", "\n9\n", 1)).unwrap();
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, None);
    assert!(matches!(t.reason, TamperReason::ForgedCheckpoint { .. }), "{t}");
}

#[test]
fn checkpoint_signed_by_an_unknown_key() {
    let f = Fixture::with_entries(10);
    let intact_report = intact(f.verify());
    let impostor = signer(2).sign(10, intact_report.root);
    std::fs::write(&f.checkpoint, impostor.to_signed_note()).unwrap();
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, None);
    assert!(matches!(t.reason, TamperReason::UnknownCheckpointKey { .. }), "{t}");
    // Verifying with the impostor's key instead shows that the key is all
    // that differs: the checkpoint itself is sound.
    let report = verify_log(&f.log, &f.checkpoint, &signer(2).verifying_key()).unwrap();
    assert!(matches!(report, VerifyReport::Intact(_)));
}

#[test]
fn malformed_and_missing_checkpoints() {
    let f = Fixture::with_entries(3);
    std::fs::write(&f.checkpoint, "not a checkpoint").unwrap();
    let t = tampered(f.verify());
    assert!(matches!(t.reason, TamperReason::MalformedCheckpoint { .. }), "{t}");
    std::fs::write(&f.checkpoint, vec![b'x'; 100_000]).unwrap();
    let t = tampered(f.verify());
    assert!(matches!(t.reason, TamperReason::MalformedCheckpoint { .. }), "{t}");
    std::fs::remove_file(&f.checkpoint).unwrap();
    let t = tampered(f.verify());
    assert_eq!(t.reason, TamperReason::CheckpointMissing { entries: 3 });
}

#[test]
fn non_utf8_line() {
    let f = Fixture::with_entries(5);
    let mut lines = f.lines();
    let at = lines[2].len() - 10;
    lines[2][at] = 0xff;
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(2));
    assert_eq!(t.reason, TamperReason::NonUtf8Line { line: 3, offset: at });
}

#[test]
fn oversized_line() {
    let f = Fixture::with_entries(5);
    let mut lines = f.lines();
    lines.insert(2, vec![b'x'; 3 * 1024 * 1024]);
    f.set_lines(&lines);
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(2));
    assert_eq!(
        t.reason,
        TamperReason::OversizedLine { line: 3, length: 3 * 1024 * 1024, limit: audit::MAX_LINE_BYTES as u64 }
    );
}

#[test]
fn io_errors_are_not_findings() {
    let f = Fixture::new();
    let missing = verify_log(&f.log, &f.checkpoint, &signer(1).verifying_key());
    assert!(matches!(missing, Err(audit::ReadError::Io { .. })));
}

#[test]
fn log_deleted_while_its_checkpoint_remains() {
    let f = Fixture::with_entries(4);
    std::fs::remove_file(&f.log).unwrap();
    let t = tampered(f.verify());
    assert_eq!(t.first_bad_seq, Some(0));
    assert_eq!(t.reason, TamperReason::Truncated { log_entries: 0, checkpoint_size: 4 });
}

#[test]
fn reports_serialise_for_the_cli() {
    let f = Fixture::with_entries(10);
    let mut lines = f.lines();
    lines.swap(3, 4);
    f.set_lines(&lines);
    let json = serde_json::to_value(f.verify()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "status": "tampered",
            "first_bad_seq": 3,
            "reason": {"reason": "reordered", "found_seq": 4}
        })
    );
}
