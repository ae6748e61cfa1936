//! The Merkle state beside the log (`<log>.hashes`, `<log>.index`): how a
//! writer uses it, rebuilds it, and refuses it, over real files.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use audit::merkle::{leaf_hash, root};
use audit::tree::{hashes_path, index_path, stored_hash_count, stored_hash_index};
use audit::{AuditError, Entry, TamperReason, kinds, load_checkpoint, prove_inclusion, verify_inclusion_proof};

use crate::support::{Fixture, event, forge_entry, intact, signer, tampered};

fn rebuilt_records(f: &Fixture) -> Vec<(String, u64)> {
    f.lines()
        .iter()
        .map(|line| Entry::from_line(line).unwrap())
        .filter(|entry| entry.kind == kinds::AUDIT_TREE_REBUILT)
        .map(|entry| (entry.data["reason"].as_str().unwrap().to_string(), entry.data["entries"].as_u64().unwrap()))
        .collect()
}

fn tamper_reason(error: AuditError) -> TamperReason {
    match error {
        AuditError::Tampered { tampering, .. } => tampering.reason,
        other => panic!("expected tampering, got: {other}"),
    }
}

fn flip_stored_hash(f: &Fixture, index: u64) {
    let file = OpenOptions::new().read(true).write(true).open(hashes_path(&f.log)).unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, index * 32).unwrap();
    file.write_all_at(&[byte[0] ^ 1], index * 32).unwrap();
}

#[test]
fn the_state_is_written_with_each_checkpointed_append_and_matches_the_log() {
    let f = Fixture::with_entries(13);
    let leaves: Vec<_> = f.lines().iter().map(|line| leaf_hash(line)).collect();
    assert_eq!(std::fs::metadata(hashes_path(&f.log)).unwrap().len(), stored_hash_count(13) * 32);
    assert_eq!(std::fs::metadata(index_path(&f.log)).unwrap().len(), 13 * 8);
    assert_eq!(load_checkpoint(&f.checkpoint).unwrap().checkpoint.root, root(&leaves));
    assert!(rebuilt_records(&f).is_empty(), "a log that always had its state never rebuilds it");
}

#[test]
fn a_missing_state_is_rebuilt_with_one_walk_and_recorded() {
    let f = Fixture::with_entries(9);
    std::fs::remove_file(hashes_path(&f.log)).unwrap();
    let mut log = f.open_signed();
    log.append(&event(9)).unwrap();
    drop(log);
    // The record of the rebuild is entry 9, the new event entry 10.
    assert_eq!(rebuilt_records(&f), [("missing".to_string(), 9)]);
    assert_eq!(intact(f.verify()).entries, 11);
    assert_eq!(std::fs::metadata(index_path(&f.log)).unwrap().len(), 11 * 8);
}

#[test]
fn a_state_cut_short_by_a_crash_is_extended_from_the_log_without_a_rebuild() {
    let f = Fixture::with_entries(12);
    // What an unflushed state can look like after a crash: shorter, with a
    // partial record at its end.
    let hashes = OpenOptions::new().write(true).open(hashes_path(&f.log)).unwrap();
    hashes.set_len(stored_hash_count(7) * 32 + 5).unwrap();
    let index = OpenOptions::new().write(true).open(index_path(&f.log)).unwrap();
    index.set_len(9 * 8 + 3).unwrap();
    let mut log = f.open_signed();
    log.append(&event(12)).unwrap();
    drop(log);
    assert!(rebuilt_records(&f).is_empty());
    assert_eq!(intact(f.verify()).entries, 13);
    assert_eq!(hashes.metadata().unwrap().len(), stored_hash_count(13) * 32);
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let proof = prove_inclusion(&f.log, &checkpoint, 8).unwrap();
    assert_eq!(verify_inclusion_proof(&proof, &signer(1).verifying_key()).unwrap().entry.seq, 8);
}

#[test]
fn a_state_that_disagrees_with_the_signed_checkpoint_is_tampering() {
    let f = Fixture::with_entries(8);
    // Stored hash 14 is the root of all eight leaves: the state's root.
    flip_stored_hash(&f, stored_hash_index(3, 0));
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap().checkpoint;
    match tamper_reason(f.try_open_signed().unwrap().append(&event(8)).unwrap_err()) {
        TamperReason::TreeStateMismatch { size, checkpoint_root, state_root } => {
            assert_eq!((size, checkpoint_root), (8, checkpoint.root));
            assert_ne!(state_root, checkpoint.root);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.lines().len(), 8, "nothing is appended over a state that does not check out");
    // Proofs do not trust it either: they walk the log, which is intact.
    let signed = load_checkpoint(&f.checkpoint).unwrap();
    let proof = prove_inclusion(&f.log, &signed, 3).unwrap();
    verify_inclusion_proof(&proof, &signer(1).verifying_key()).unwrap();
}

#[test]
fn a_state_whose_leaf_is_not_the_logs_line_is_rebuilt_and_recorded() {
    let f = Fixture::with_entries(8);
    flip_stored_hash(&f, stored_hash_index(0, 7));
    let mut log = f.open_signed();
    log.append(&event(8)).unwrap();
    drop(log);
    assert_eq!(rebuilt_records(&f), [("disagreed_with_log".to_string(), 8)]);
    assert_eq!(intact(f.verify()).entries, 10);
}

#[test]
fn a_state_recording_more_entries_than_the_log_holds_is_tampering() {
    let f = Fixture::with_entries(6);
    // The log and its checkpoint replaced by a fresh, shorter pair.
    std::fs::remove_file(&f.log).unwrap();
    std::fs::remove_file(&f.checkpoint).unwrap();
    let error = f.try_open_signed().unwrap().append(&event(0)).unwrap_err();
    assert_eq!(tamper_reason(error), TamperReason::TreeStateAhead { log_entries: 0, state_entries: 6 });
}

/// The writer reads O(log n) of the log, so it does not see an edit in the
/// middle of it that keeps every offset; but the roots it signs come from the
/// state the previous checkpoint vouched for, so the next checkpoint still
/// commits to the original entry, and `verify` names the edit.
#[test]
fn an_entry_edited_after_it_was_checkpointed_is_never_signed_over() {
    let f = Fixture::with_entries(10);
    let original = f.lines();
    let edited = |status: u64| {
        let mut entry = Entry::from_line(&original[4]).unwrap();
        entry.data.insert("status".into(), serde_json::Value::from(status));
        let mut lines = original.clone();
        lines[4] = forge_entry(entry).0;
        lines
    };
    // Same length: every offset in the index still holds.
    f.set_lines(&edited(5));
    let mut log = f.open_signed();
    log.append(&event(10)).unwrap();
    drop(log);
    let mut honest: Vec<_> = original.iter().map(|line| leaf_hash(line)).collect();
    honest.push(leaf_hash(f.lines().last().unwrap()));
    let signed = load_checkpoint(&f.checkpoint).unwrap().checkpoint;
    assert_eq!((signed.size, signed.root), (11, root(&honest)));
    let found = tampered(f.verify());
    assert_eq!((found.first_bad_seq, found.reason), (Some(5), TamperReason::ChainBroken));

    // Longer: the last entry is no longer where the index says, the state
    // is rebuilt from the log, and the walk refuses the broken chain.
    let f = Fixture::with_entries(10);
    f.set_lines(&edited(5000));
    let error = f.try_open_signed().unwrap().append(&event(10)).unwrap_err();
    assert_eq!(tamper_reason(error), TamperReason::ChainBroken);
    assert_eq!(f.lines().len(), 10);
}

#[test]
fn the_state_gets_the_logs_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let f = crate::support::Fixture::new();
    std::fs::write(&f.log, b"").unwrap();
    std::fs::set_permissions(&f.log, std::fs::Permissions::from_mode(0o660)).unwrap();
    f.open_signed().append(&event(0)).unwrap();
    for path in [hashes_path(&f.log), index_path(&f.log)] {
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660, "{}", path.display());
    }
}
