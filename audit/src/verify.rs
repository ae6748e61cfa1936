//! `verify`: the whole-log check, and the names of everything it can find.
//!
//! Verification streams the log once: each line is checked for canonical
//! form, its own hash, its seq and its link to the previous entry, and is
//! folded into a Merkle tree held in O(log n) memory. The trusted checkpoint
//! then pins the first `size` entries to a signed root, which is what catches
//! a deleted tail or a restored older copy: the chain alone cannot.
//!
//! Findings are reported in this order, and only the first: problems with the
//! checkpoint itself (malformed, unknown key, bad signature); then the first
//! bad line in file order; then a missing checkpoint, a log shorter than the
//! checkpoint, or a root that differs from the checkpoint's.

use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::checkpoint::{
    Checkpoint, CheckpointError, CheckpointVerifyError, parse_checkpoint_bytes, read_checkpoint_file,
};
use crate::error::ReadError;
use crate::hash::Sha256Hash;
use crate::lines::LineReader;
use crate::merkle::{CompactTree, empty_root, leaf_hash};
use crate::scan::EntryParseError;
use crate::walk::{ChainCursor, WalkError, WalkScope, walk};

/// The outcome of [`verify_log`]. The CLI maps `Intact` to exit code 0 and
/// `Tampered` to 1; I/O failures are the `Err` of `verify_log` (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VerifyReport {
    Intact(IntactLog),
    Tampered(Tampering),
}

/// What an intact log looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntactLog {
    /// Number of entries.
    pub entries: u64,
    /// Merkle root over all entries.
    pub root: Sha256Hash,
    /// Hash of the last entry (the chain head); zeros for an empty log.
    pub last_hash: Sha256Hash,
    /// The verified checkpoint; `None` only for an empty log without one.
    pub checkpoint: Option<Checkpoint>,
    /// Entries after the checkpoint. They chain correctly, but no signature
    /// covers them yet: a writer that crashed before refreshing the
    /// checkpoint leaves some, and so would someone who appended entries with
    /// correctly computed hashes by hand. Nothing in the log tells those
    /// apart; the next signed checkpoint, or a witness, does.
    pub uncheckpointed_entries: u64,
    /// Bytes after the last newline: a write torn by a crash, never
    /// committed. The next writer moves them aside (see `AuditLog::open`).
    pub uncommitted_tail_bytes: u64,
}

/// A definite finding: the log or its checkpoint was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tampering {
    /// The first seq found bad, where one can be named. Checkpoint problems
    /// and a root mismatch concern the log as a whole and name none.
    pub first_bad_seq: Option<u64>,
    pub reason: TamperReason,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first_bad_seq {
            Some(seq) => write!(f, "first bad seq {seq}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// How a log entry after the checkpoint is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppendDefect {
    /// Its `prev` does not name the entry before it.
    ChainBroken,
    /// Its `hash` does not match its contents.
    HashMismatch,
}

/// Why a log is not intact. Each variant is a different thing to tell an
/// operator; line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TamperReason {
    /// The entry's own hash is right but its `prev` is not the hash of the
    /// entry before it: the entry before was rewritten and re-hashed, or
    /// this one was spliced in.
    #[error("chain broken: prev does not name the entry before it")]
    ChainBroken,
    /// The log has entries but there is no checkpoint file, so nothing
    /// guards its tail.
    #[error("no checkpoint file for a log of {entries} entries")]
    CheckpointMissing { entries: u64 },
    /// The first `size` entries are not the ones the checkpoint signed,
    /// although they chain correctly: an older copy was restored and then
    /// appended to, or history was rewritten with every hash recomputed.
    #[error(
        "the first {size} entries have merkle root {log_root}, but the checkpoint signed {checkpoint_root}: an older copy was restored or history rewritten"
    )]
    CheckpointRootMismatch { size: u64, checkpoint_root: Sha256Hash, log_root: Sha256Hash },
    /// A seq that already appeared appears again.
    #[error("entry with seq {found_seq} appears again")]
    DuplicateEntry { found_seq: u64 },
    /// The entry's contents do not match its hash: it was edited in place.
    #[error("entry edited: its hash is {stated} but its contents hash to {computed}")]
    EditedEntry { stated: Sha256Hash, computed: Sha256Hash },
    /// An entry after the checkpoint with a wrong hash or a broken link:
    /// no writer of this library produces one, so it was written by hand.
    /// (Entries after the checkpoint that are internally correct cannot be
    /// told from genuine ones: see [`IntactLog::uncheckpointed_entries`].)
    #[error("forged append after the checkpoint of size {checkpoint_size}: {defect:?}")]
    ForgedAppend { checkpoint_size: u64, defect: AppendDefect },
    /// A signature line names the trusted key but does not verify: the
    /// checkpoint text was changed after signing.
    #[error("forged checkpoint: the signature by {key_name}+{key_id} does not match its text")]
    ForgedCheckpoint { key_name: String, key_id: String },
    /// The checkpoint file is not a signed checkpoint.
    #[error("checkpoint is malformed: {error}")]
    MalformedCheckpoint { error: CheckpointError },
    /// A line is not a well-formed, canonical entry.
    #[error("line {line} is malformed: {error}")]
    MalformedLine { line: u64, error: EntryParseError },
    /// An entry is absent: the line where it belongs carries a later seq
    /// and the expected one does not appear anywhere after it.
    #[error("entry missing: found seq {found_seq} instead")]
    MissingEntry { found_seq: u64 },
    /// A line contains bytes that are not UTF-8.
    #[error("line {line} is not valid utf-8 (byte {offset} of the line)")]
    NonUtf8Line { line: u64, offset: usize },
    /// A line is longer than any entry may be.
    #[error("line {line} is {length} bytes long, over the limit of {limit}")]
    OversizedLine { line: u64, length: u64, limit: u64 },
    /// Entries are out of order: the line carries a later seq, and the
    /// expected one appears further down.
    #[error("entries reordered: found seq {found_seq} where an earlier one belongs")]
    Reordered { found_seq: u64 },
    /// The log ends in bytes without a newline where the checkpoint covers
    /// entries: a committed entry lost its newline (or was cut short), which
    /// no crash does, since checkpoints are written only after their entries
    /// are synced. A writer refuses to "recover" such a tail.
    #[error(
        "the log has {complete} complete entries followed by bytes without a newline, but the checkpoint covers \
         {checkpoint_size}: committed entries were cut, not torn by a crash"
    )]
    CheckpointedTailCut { complete: u64, checkpoint_size: u64 },
    /// The log has fewer entries than the checkpoint covers: its tail was
    /// cut, or an older, shorter copy was put in its place.
    #[error(
        "log has {log_entries} entries but the checkpoint covers {checkpoint_size}: truncated or replaced by an older copy"
    )]
    Truncated { log_entries: u64, checkpoint_size: u64 },
    /// The Merkle state beside the log (`<log>.hashes`, `<log>.index`) gives
    /// another root than the valid signed checkpoint for the same size: the
    /// state file or the log's checkpointed entries were changed. Nothing is
    /// signed over it; `guardian audit verify` walks the log to tell which.
    #[error(
        "the merkle state beside the log gives root {state_root} for its first {size} entries, but the \
         checkpoint signed {checkpoint_root}: the state file or the log was changed"
    )]
    TreeStateMismatch { size: u64, checkpoint_root: Sha256Hash, state_root: Sha256Hash },
    /// The Merkle state records more entries than the log holds. State is
    /// written only after its entries are synced, so committed entries were
    /// cut from the log (or the state of a longer log was put beside it).
    #[error(
        "the merkle state beside the log records {state_entries} entries but the log holds {log_entries}: \
         committed entries were cut"
    )]
    TreeStateAhead { log_entries: u64, state_entries: u64 },
    /// No signature line of the checkpoint belongs to the trusted key.
    #[error("checkpoint is signed by unknown keys only: {}", signers.join(", "))]
    UnknownCheckpointKey { signers: Vec<String> },
    /// The checkpoint is signed by a log key of the trust store, but one
    /// that is not bound to the checkpoint's origin: another node's key
    /// vouching for this node's log (for example over a rewritten copy).
    #[error("checkpoint of origin {origin:?} is signed by log key {key_id}, which may sign only for {bound:?}")]
    CheckpointKeyNotBoundToOrigin { origin: String, key_id: String, bound: Vec<String> },
}

impl TamperReason {
    pub(crate) fn from_checkpoint_error(error: CheckpointVerifyError) -> Self {
        match error {
            CheckpointVerifyError::UnknownKey { signers } => TamperReason::UnknownCheckpointKey { signers },
            CheckpointVerifyError::BadSignature { key_name, key_id } => {
                TamperReason::ForgedCheckpoint { key_name, key_id }
            }
        }
    }
}

/// Which of a trust store's log keys vouches for a checkpoint; see
/// [`checkpoint_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointKey {
    /// Verify with this key: bound to the note's origin and, when any is,
    /// the one whose key hash signed it.
    Trusted(VerifyingKey),
    /// The note is signed by a log key bound to other origins only.
    NotBound(Tampering),
}

/// Picks the key that must have signed `note` (a checkpoint's text): among
/// the trust store's log keys bound to the note's origin, the one whose C2SP
/// key hash signed it, else the first of them, so that verification names an
/// unknown signer. A note signed only by a log key of another origin is
/// [`CheckpointKey::NotBound`]. `None` when the store has no usable log key
/// at all. A note that does not parse gets any log key: verification then
/// reports it malformed.
pub fn checkpoint_key(trust: &signer::trust::TrustStore, note: &str) -> Option<CheckpointKey> {
    let Ok(signed) = crate::SignedCheckpoint::parse(note) else {
        return trust.log_keys_any().next().map(|k| CheckpointKey::Trusted(*k.verifying_key()));
    };
    let origin = signed.checkpoint.origin.as_str();
    let signed_by: Vec<String> = signed.signatures().into_iter().map(|s| s.key_id).collect();
    let signed_it =
        |key: &signer::minisign::PublicKey| signed_by.contains(&crate::checkpoint::key_id(origin, key.verifying_key()));
    let bound: Vec<&signer::minisign::PublicKey> = trust.log_keys_for(origin).collect();
    if let Some(key) = bound.iter().find(|k| signed_it(k)) {
        return Some(CheckpointKey::Trusted(*key.verifying_key()));
    }
    if let Some(other) = trust.log_keys_any().find(|k| signed_it(k))
        && let Err(signer::trust::LogKeyRefusal::OriginNotBound { key_id, bound, .. }) =
            trust.log_key_for(other.key_id(), origin)
    {
        let reason = TamperReason::CheckpointKeyNotBoundToOrigin {
            origin: origin.to_string(),
            key_id: key_id.to_string(),
            bound,
        };
        return Some(CheckpointKey::NotBound(Tampering { first_bad_seq: None, reason }));
    }
    let fallback = bound.first().copied().or_else(|| trust.log_keys_any().next());
    fallback.map(|k| CheckpointKey::Trusted(*k.verifying_key()))
}

/// Verifies the whole log at `log` against the checkpoint at `checkpoint`
/// (usually [`crate::default_checkpoint_path`]), trusting only `trusted_key`.
///
/// The log is read without a lock: entries appended meanwhile are verified
/// too (or, if caught mid-write, counted as an uncommitted tail), and since
/// writers write the log before the checkpoint and the checkpoint is read
/// first, a concurrent append never causes a false finding.
pub fn verify_log(log: &Path, checkpoint: &Path, trusted_key: &VerifyingKey) -> Result<VerifyReport, ReadError> {
    let checkpoint_bytes = read_checkpoint_file(checkpoint).map_err(|e| ReadError::io("read", checkpoint, e))?;
    let trusted = match checkpoint_bytes {
        None => None,
        Some(bytes) => {
            let signed = match parse_checkpoint_bytes(&bytes) {
                Ok(signed) => signed,
                Err(error) => return Ok(tampered(None, TamperReason::MalformedCheckpoint { error })),
            };
            match signed.verify(trusted_key) {
                Ok(checkpoint) => Some(checkpoint.clone()),
                Err(e) => return Ok(tampered(None, TamperReason::from_checkpoint_error(e))),
            }
        }
    };

    let file = match crate::checkpoint::open_for_reading(log) {
        Ok(file) => file,
        // A log that is gone while a checkpoint vouches for entries in it
        // was truncated to nothing; without such a checkpoint a missing file
        // is just an I/O error (a wrong path, say).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match &trusted {
            Some(checkpoint) if checkpoint.size > 0 => {
                return Ok(tampered(
                    Some(0),
                    TamperReason::Truncated { log_entries: 0, checkpoint_size: checkpoint.size },
                ));
            }
            _ => return Err(ReadError::io("open", log, e)),
        },
        Err(e) => return Err(ReadError::io("open", log, e)),
    };
    let mut reader = LineReader::new(file, 0);
    let checkpoint_size = trusted.as_ref().map(|c| c.size);
    let mut tree = CompactTree::new();
    let mut root_at_checkpoint = (checkpoint_size == Some(0)).then(empty_root);
    let scope = WalkScope { checkpoint_size, stop_after: None };
    let end = match walk(&mut reader, ChainCursor::start(), scope, |_, line, _| {
        tree.push(leaf_hash(line));
        if Some(tree.size()) == checkpoint_size {
            root_at_checkpoint = Some(tree.root());
        }
    }) {
        Ok(end) => end,
        Err(WalkError::Io(e)) => return Err(ReadError::io("read", log, e)),
        Err(WalkError::Tampered(tampering)) => return Ok(VerifyReport::Tampered(tampering)),
    };

    let entries = end.cursor.next_seq;
    let root = tree.root();
    let uncheckpointed_entries = match &trusted {
        None if entries > 0 => return Ok(tampered(None, TamperReason::CheckpointMissing { entries })),
        None => 0,
        Some(checkpoint) => {
            if entries < checkpoint.size {
                return Ok(tampered(
                    Some(entries),
                    TamperReason::Truncated { log_entries: entries, checkpoint_size: checkpoint.size },
                ));
            }
            let log_root = root_at_checkpoint.unwrap_or(root);
            if log_root != checkpoint.root {
                return Ok(tampered(
                    None,
                    TamperReason::CheckpointRootMismatch {
                        size: checkpoint.size,
                        checkpoint_root: checkpoint.root,
                        log_root,
                    },
                ));
            }
            entries - checkpoint.size
        }
    };
    Ok(VerifyReport::Intact(IntactLog {
        entries,
        root,
        last_hash: end.cursor.last_hash,
        checkpoint: trusted,
        uncheckpointed_entries,
        uncommitted_tail_bytes: end.torn.map_or(0, |(_, length)| length),
    }))
}

fn tampered(first_bad_seq: Option<u64>, reason: TamperReason) -> VerifyReport {
    VerifyReport::Tampered(Tampering { first_bad_seq, reason })
}
