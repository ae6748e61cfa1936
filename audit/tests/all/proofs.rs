//! Inclusion and consistency proofs over a real log: produced, printed as
//! JSON, read back and verified offline; tampering with either side fails.

use audit::{
    AuditProof, Entry, OldTree, ProofError, ProofVerifyError, Sha256Hash, TamperReason, VerifiedProof, load_checkpoint,
    prove_consistency, prove_inclusion, verify_proof,
};

use crate::support::{Fixture, event, forge_entry, signer};

#[test]
fn every_entry_has_a_verifying_inclusion_proof() {
    let f = Fixture::with_entries(13);
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let key = signer(1).verifying_key();
    for seq in 0..13 {
        let proof = prove_inclusion(&f.log, &checkpoint, seq).unwrap();
        let json = serde_json::to_string(&AuditProof::Inclusion(proof)).unwrap();
        let read_back: AuditProof = serde_json::from_str(&json).unwrap();
        match verify_proof(&read_back, &key, OldTree::DangerouslyUnanchored).unwrap() {
            VerifiedProof::Inclusion(verified) => {
                assert_eq!(verified.entry.seq, seq);
                assert_eq!(verified.entry.data["status"], seq);
                assert_eq!(verified.checkpoint.size, 13);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        prove_inclusion(&f.log, &checkpoint, 13),
        Err(ProofError::SeqOutOfRange { seq: 13, tree_size: 13 })
    ));
}

#[test]
fn altered_inclusion_proofs_fail() {
    let f = Fixture::with_entries(9);
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let key = signer(1).verifying_key();
    let proof = prove_inclusion(&f.log, &checkpoint, 4).unwrap();

    // The entry swapped for another, correctly hashed one.
    let mut entry = Entry::from_line(proof.entry.as_bytes()).unwrap();
    entry.data.insert("status".into(), serde_json::json!(99));
    let mut forged = proof.clone();
    forged.entry = String::from_utf8(forge_entry(entry).0).unwrap();
    assert!(matches!(audit::verify_inclusion_proof(&forged, &key), Err(ProofVerifyError::Merkle(_))));

    let mut wrong_seq = proof.clone();
    wrong_seq.seq = 5;
    assert!(matches!(audit::verify_inclusion_proof(&wrong_seq, &key), Err(ProofVerifyError::SeqMismatch { .. })));

    let mut bent_path = proof.clone();
    bent_path.path[1].0[0] ^= 1;
    assert!(matches!(audit::verify_inclusion_proof(&bent_path, &key), Err(ProofVerifyError::Merkle(_))));

    assert!(matches!(
        audit::verify_inclusion_proof(&proof, &signer(2).verifying_key()),
        Err(ProofVerifyError::UntrustedCheckpoint(_))
    ));
}

#[test]
fn consistency_between_two_checkpoints() {
    let f = Fixture::with_entries(7);
    let old_checkpoint = std::fs::read_to_string(&f.checkpoint).unwrap();
    let mut log = f.open_signed();
    for i in 7..20 {
        log.append(&event(i)).unwrap();
    }
    let key = signer(1).verifying_key();
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    for old_size in [0, 1, 6, 7, 8, 16, 20] {
        let proof = prove_consistency(&f.log, &checkpoint, old_size).unwrap();
        let json = serde_json::to_string(&AuditProof::Consistency(proof)).unwrap();
        let read_back: AuditProof = serde_json::from_str(&json).unwrap();
        verify_proof(&read_back, &key, OldTree::DangerouslyUnanchored).unwrap_or_else(|e| panic!("{old_size}: {e:#}"));
    }
    let proof = prove_consistency(&f.log, &checkpoint, 7).unwrap();
    let verified = audit::verify_consistency_proof(&proof, &key, OldTree::SignedCheckpoint(&old_checkpoint)).unwrap();
    assert_eq!((verified.old_size, verified.checkpoint.size), (7, 20));

    let wrong_root = OldTree::Root { size: 7, root: Sha256Hash([3; 32]) };
    assert!(matches!(
        audit::verify_consistency_proof(&proof, &key, wrong_root),
        Err(ProofVerifyError::OldTreeMismatch { .. })
    ));
    let mut bent = proof.clone();
    bent.path[0].0[5] ^= 1;
    assert!(matches!(
        audit::verify_consistency_proof(&bent, &key, OldTree::SignedCheckpoint(&old_checkpoint)),
        Err(ProofVerifyError::Merkle(_))
    ));
    assert!(matches!(prove_consistency(&f.log, &checkpoint, 21), Err(ProofError::OldSizeOutOfRange { .. })));
}

/// A witness that kept an old checkpoint catches rewritten history even when
/// the log's current checkpoint was re-signed over it.
#[test]
fn rewritten_history_fails_consistency_with_a_kept_checkpoint() {
    let f = Fixture::with_entries(7);
    let kept = std::fs::read_to_string(&f.checkpoint).unwrap();
    // The key holder rewrites the log from scratch and re-signs it.
    std::fs::remove_file(&f.log).unwrap();
    std::fs::remove_file(&f.checkpoint).unwrap();
    std::fs::remove_file(audit::tree::hashes_path(&f.log)).unwrap();
    std::fs::remove_file(audit::tree::index_path(&f.log)).unwrap();
    let mut log = f.open_signed();
    for i in 100..110 {
        log.append(&event(i)).unwrap();
    }
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let proof = prove_consistency(&f.log, &checkpoint, 7).unwrap();
    assert!(matches!(
        audit::verify_consistency_proof(&proof, &signer(1).verifying_key(), OldTree::SignedCheckpoint(&kept)),
        Err(ProofVerifyError::OldTreeMismatch { .. })
    ));
}

/// A proof reads only what it depends on: the proved entry's line (checked
/// against the Merkle state) and the state (checked against the signed
/// root). A changed or missing entry is refused with the log's own reason;
/// an intact entry of a log tampered elsewhere still gets a proof that
/// verifies, since it is in the signed tree (`verify` is what finds the rest).
#[test]
fn proofs_are_refused_over_a_tampered_log() {
    let f = Fixture::with_entries(8);
    let key = signer(1).verifying_key();
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let original = f.lines();
    let mut swapped = original.clone();
    swapped.swap(2, 3);
    f.set_lines(&swapped);
    match prove_inclusion(&f.log, &checkpoint, 2) {
        Err(ProofError::Tampered(t)) => assert_eq!(t.reason, TamperReason::Reordered { found_seq: 3 }),
        other => panic!("{other:?}"),
    }
    let intact = prove_inclusion(&f.log, &checkpoint, 6).unwrap();
    assert_eq!(audit::verify_inclusion_proof(&intact, &key).unwrap().entry.seq, 6);
    f.set_lines(&original[..5]);
    assert!(matches!(
        prove_inclusion(&f.log, &checkpoint, 6),
        Err(ProofError::LogShorterThanCheckpoint { entries: 5, tree_size: 8 })
    ));
    // Without the state every proof walks the log and refuses it whole.
    std::fs::remove_file(audit::tree::hashes_path(&f.log)).unwrap();
    assert!(matches!(
        prove_inclusion(&f.log, &checkpoint, 1),
        Err(ProofError::LogShorterThanCheckpoint { entries: 5, tree_size: 8 })
    ));
}

#[test]
fn proof_json_shape_is_stable() {
    let f = Fixture::with_entries(3);
    let checkpoint = load_checkpoint(&f.checkpoint).unwrap();
    let proof = prove_inclusion(&f.log, &checkpoint, 1).unwrap();
    let json = serde_json::to_value(AuditProof::Inclusion(proof)).unwrap();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["checkpoint", "entry", "path", "seq", "tree_size", "type"]);
    assert_eq!(json["type"], "inclusion");
    assert_eq!(json["path"].as_array().unwrap().len(), 2);
}
