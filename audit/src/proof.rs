//! `prove`, `consistency` and `verify-proof`: self-contained, serialisable
//! Merkle proofs that can be checked offline with only the log's public key.
//!
//! Each proof carries the signed checkpoint it is anchored to (the signed
//! note text, verbatim), so a verifier needs nothing but the proof and a
//! trusted key. An inclusion proof also carries the entry's line, so it shows
//! what was logged, not only that something was. JSON shape, with
//! `"type":"inclusion"` or `"type":"consistency"`:
//!
//! ```text
//! {"type":"inclusion","seq":5,"tree_size":8,"entry":"{\"actor\":…}","path":["…"],"checkpoint":"origin\n8\n…"}
//! {"type":"consistency","old_size":5,"old_root":"…","new_size":8,"path":["…"],"checkpoint":"origin\n8\n…"}
//! ```

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Checkpoint, CheckpointError, CheckpointVerifyError, SignedCheckpoint, parse_checkpoint_bytes, read_checkpoint_file,
};
use crate::entry::{Entry, EventError};
use crate::error::ReadError;
use crate::hash::Sha256Hash;
use crate::lines::LineReader;
use crate::merkle::{self, MerkleProofError, leaf_hash};
use crate::scan::EntryParseError;
use crate::tree::{StoredTree, read_line_at};
use crate::verify::Tampering;
use crate::walk::{ChainCursor, WalkError, WalkScope, walk};

/// Proof that one entry is in the log the checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    /// The entry's line, without its newline.
    pub entry: String,
    /// Sibling hashes, nearest the leaf first.
    pub path: Vec<Sha256Hash>,
    /// The signed checkpoint (of `tree_size` entries) the path leads to.
    pub checkpoint: String,
}

impl InclusionProof {
    /// The proof as a C2SP tlog-proof: the entry's line (which the format
    /// leaves to the application) as the base64 `extra` data, its index, the
    /// path, an empty line and the checkpoint verbatim. The `extra` data is
    /// not trusted by a verifier: the entry must hash to the proven leaf.
    pub fn to_tlog_proof(&self) -> String {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;
        let mut text = format!("{TLOG_PROOF_HEADER}\nextra {}\nindex {}\n", base64.encode(&self.entry), self.seq);
        for hash in &self.path {
            text.push_str(&base64.encode(hash.as_bytes()));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Parses a C2SP tlog-proof written by [`InclusionProof::to_tlog_proof`]
    /// (one whose `extra` data is the entry's line), without checking it.
    pub fn from_tlog_proof(bytes: &[u8]) -> Result<Self, ProofReadError> {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;
        let malformed = |what: &str| ProofReadError::Malformed(format!("tlog-proof: {what}"));
        if bytes.len() as u64 > MAX_PROOF_BYTES {
            return Err(malformed("over the size cap"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let (head, checkpoint) =
            text.split_once("\n\n").ok_or_else(|| malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let extra = lines
            .next()
            .and_then(|l| l.strip_prefix("extra "))
            .ok_or_else(|| malformed("no extra line: Night Core's proofs carry the entry's line there"))?;
        let entry = base64
            .decode(extra)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| malformed("the extra data is not base64 of a UTF-8 line"))?;
        let index = lines.next().and_then(|l| l.strip_prefix("index ")).ok_or_else(|| malformed("no index line"))?;
        let canonical = index == "0" || (!index.starts_with('0') && index.bytes().all(|b| b.is_ascii_digit()));
        let seq = index
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| malformed("the index is not a decimal without leading zeroes"))?;
        let mut path = Vec::new();
        for line in lines {
            if path.len() == MAX_PATH_HASHES {
                return Err(malformed("more than 63 path hashes"));
            }
            let hash = base64
                .decode(line)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| malformed("a path line is not a base64 SHA-256 hash"))?;
            path.push(Sha256Hash(hash));
        }
        let tree_size = SignedCheckpoint::parse(checkpoint)
            .map_err(|e| malformed(&format!("the checkpoint: {e}")))?
            .checkpoint
            .size;
        Ok(InclusionProof { seq, tree_size, entry, path, checkpoint: checkpoint.to_string() })
    }
}

/// Proof that the log the checkpoint commits to extends the log of
/// `old_size` entries with `old_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub old_root: Sha256Hash,
    pub new_size: u64,
    pub path: Vec<Sha256Hash>,
    /// The signed checkpoint of `new_size` entries.
    pub checkpoint: String,
}

/// Either proof, as `verify-proof` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditProof {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

/// The largest proof file read: a proof holds at most 64 hashes, a
/// checkpoint and one entry line, so this is far above any real one.
pub const MAX_PROOF_BYTES: u64 = 16 * 1024 * 1024;

/// The first line of a C2SP `tlog-proof` (<https://c2sp.org/tlog-proof>).
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// RFC 6962 paths of a tree of at most 2^63 leaves have at most 63 hashes.
const MAX_PATH_HASHES: usize = 63;

impl AuditProof {
    /// Reads a proof file, capped at [`MAX_PROOF_BYTES`] and regular files
    /// only (its signature and path are checked by [`verify_proof`]): the
    /// JSON `prove` writes, or a C2SP tlog-proof (`prove --format tlog-proof`).
    pub fn read(path: &Path) -> Result<Self, ProofReadError> {
        let bytes = signer::fsutil::read_capped(path, MAX_PROOF_BYTES)?;
        Self::from_bytes(&bytes)
    }

    /// Parses either form, by its first line.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofReadError> {
        if bytes.starts_with(TLOG_PROOF_HEADER.as_bytes()) {
            InclusionProof::from_tlog_proof(bytes).map(AuditProof::Inclusion)
        } else {
            Self::from_json_bytes(bytes)
        }
    }

    /// Parses proof JSON (as `prove` writes it), without checking it.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, ProofReadError> {
        if bytes.len() as u64 > MAX_PROOF_BYTES {
            return Err(ProofReadError::Malformed(format!(
                "{} bytes, over the {MAX_PROOF_BYTES}-byte cap",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| ProofReadError::Malformed(e.to_string()))
    }
}

/// Why a proof file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofReadError {
    #[error(transparent)]
    Read(#[from] signer::fsutil::ReadCappedError),
    #[error("not a proof: {0}")]
    Malformed(String),
}

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("there is no checkpoint at {path}")]
    NoCheckpoint { path: std::path::PathBuf },
    #[error("checkpoint is malformed")]
    MalformedCheckpoint(#[source] CheckpointError),
    #[error("log is tampered: {0}")]
    Tampered(Tampering),
    #[error("seq {seq} is not covered by the checkpoint of {tree_size} entries")]
    SeqOutOfRange { seq: u64, tree_size: u64 },
    #[error("old size {old_size} is larger than the checkpoint's {tree_size} entries")]
    OldSizeOutOfRange { old_size: u64, tree_size: u64 },
    #[error("log has {entries} entries, fewer than the checkpoint's {tree_size}")]
    LogShorterThanCheckpoint { entries: u64, tree_size: u64 },
    #[error("log's first {tree_size} entries have root {log_root}, not the checkpoint's {checkpoint_root}")]
    LogDisagreesWithCheckpoint { tree_size: u64, log_root: Sha256Hash, checkpoint_root: Sha256Hash },
}

/// Why a proof does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofVerifyError {
    #[error("proof's checkpoint is malformed")]
    MalformedCheckpoint(#[source] CheckpointError),
    #[error("proof's checkpoint is not trusted")]
    UntrustedCheckpoint(#[source] CheckpointVerifyError),
    #[error("proof is for {proof_size} entries but its checkpoint covers {checkpoint_size}")]
    TreeSizeMismatch { proof_size: u64, checkpoint_size: u64 },
    #[error("proof's entry is malformed")]
    MalformedEntry(#[source] EntryParseError),
    #[error("proof is for seq {proof_seq} but its entry has seq {entry_seq}")]
    SeqMismatch { proof_seq: u64, entry_seq: u64 },
    #[error("proof's entry carries hash {stated} but hashes to {computed}")]
    EntryHashMismatch { stated: Sha256Hash, computed: Sha256Hash },
    #[error("proof's entry cannot be re-encoded")]
    EntryEncoding(#[source] EventError),
    #[error(
        "old tree of the proof ({proof_size} entries, root {proof_root}) is not the trusted one ({trusted_size} entries, root {trusted_root})"
    )]
    OldTreeMismatch { proof_size: u64, proof_root: Sha256Hash, trusted_size: u64, trusted_root: Sha256Hash },
    #[error("merkle path does not verify")]
    Merkle(#[source] MerkleProofError),
}

/// What a consistency proof's old tree is checked against.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum OldTree<'a> {
    /// A checkpoint the verifier kept from before (signed note text); it
    /// must verify with the same key.
    SignedCheckpoint(&'a str),
    /// A size and root the verifier already trusts.
    Root { size: u64, root: Sha256Hash },
    /// Take the proof's own `old_size` and `old_root` at its word: this only
    /// shows that the log has *some* earlier state with that root.
    DangerouslyUnanchored,
}

/// A verified inclusion: this entry is at its seq in the checkpointed log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedInclusion {
    pub entry: Entry,
    pub checkpoint: Checkpoint,
}

/// A verified consistency: the checkpointed log extends the old tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedConsistency {
    pub old_size: u64,
    pub old_root: Sha256Hash,
    pub checkpoint: Checkpoint,
}

/// Either verified proof.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VerifiedProof {
    Inclusion(VerifiedInclusion),
    Consistency(VerifiedConsistency),
}

/// Reads and parses the checkpoint file (its signature is not checked: the
/// prover needs no key; the verifier checks).
pub fn load_checkpoint(path: &Path) -> Result<SignedCheckpoint, ProofError> {
    let bytes = read_checkpoint_file(path)
        .map_err(|e| ReadError::io("read", path, e))?
        .ok_or_else(|| ProofError::NoCheckpoint { path: path.to_path_buf() })?;
    parse_checkpoint_bytes(&bytes).map_err(ProofError::MalformedCheckpoint)
}

/// The leaf hashes of the checkpoint's `size` entries, after checking that
/// they chain and that their root is the checkpoint's; and the line of
/// `want_line`, if given.
fn checkpointed_leaves(
    log: &Path,
    checkpoint: &Checkpoint,
    want_line: Option<u64>,
) -> Result<(Vec<Sha256Hash>, Option<String>), ProofError> {
    let file = crate::checkpoint::open_for_reading(log).map_err(|e| ReadError::io("open", log, e))?;
    let mut reader = LineReader::new(file, 0);
    let tree_size = checkpoint.size;
    // The size comes from the checkpoint: reserve modestly and let it grow.
    let mut leaves = Vec::with_capacity(usize::try_from(tree_size).unwrap_or(0).min(1 << 20));
    let mut line_text = None;
    let scope = WalkScope { checkpoint_size: Some(tree_size), stop_after: Some(tree_size) };
    let end = walk(&mut reader, ChainCursor::start(), scope, |seq, line, _| {
        leaves.push(leaf_hash(line));
        if Some(seq) == want_line {
            // Lines that passed the walk are valid UTF-8.
            line_text = std::str::from_utf8(line).ok().map(str::to_owned);
        }
    })
    .map_err(|error| match error {
        WalkError::Io(e) => ProofError::Read(ReadError::io("read", log, e)),
        WalkError::Tampered(tampering) => ProofError::Tampered(tampering),
    })?;
    let entries = end.cursor.next_seq;
    if entries < tree_size {
        return Err(ProofError::LogShorterThanCheckpoint { entries, tree_size });
    }
    let log_root = merkle::root(&leaves);
    if log_root != checkpoint.root {
        return Err(ProofError::LogDisagreesWithCheckpoint { tree_size, log_root, checkpoint_root: checkpoint.root });
    }
    Ok((leaves, line_text))
}

/// The Merkle state beside the log, if it is there, covers the checkpoint
/// and gives the checkpoint's root: then proofs need O(log n) reads of it.
/// Anything else (missing, shorter, unreadable, another root) means the
/// proof is made the slow way, by walking the log, which also says what is
/// wrong with the log if anything is.
fn stored_tree(log: &Path, checkpoint: &Checkpoint) -> Option<StoredTree> {
    let tree = match StoredTree::open_for_reading(log) {
        Ok(Some(tree)) => tree,
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(log = %log.display(), %error, "merkle state unreadable; walking the log");
            return None;
        }
    };
    if tree.size() < checkpoint.size {
        return None;
    }
    match tree.root_at(checkpoint.size) {
        Ok(root) if root == checkpoint.root => Some(tree),
        _ => {
            tracing::warn!(log = %log.display(), "merkle state does not give the checkpoint's root; walking the log");
            None
        }
    }
}

/// Entry `seq`'s line, found through the state's index and checked against
/// the state's leaf hash (which the checkpoint's root vouches for).
fn stored_line(log: &Path, tree: &StoredTree, seq: u64) -> Option<String> {
    let file = crate::checkpoint::open_for_reading(log).ok()?;
    let end = file.metadata().ok()?.len();
    let line = read_line_at(&file, tree.offset_of(seq).ok()?, end).ok()??;
    if leaf_hash(&line) != tree.leaf(seq).ok()? {
        return None;
    }
    String::from_utf8(line).ok()
}

/// `prove SEQ`: an inclusion proof of entry `seq` in the log as of the
/// checkpoint `signed` (usually [`load_checkpoint`] of the log's checkpoint).
/// O(log n) reads of the Merkle state when it matches the checkpoint, else a
/// walk over the log.
pub fn prove_inclusion(log: &Path, signed: &SignedCheckpoint, seq: u64) -> Result<InclusionProof, ProofError> {
    let checkpoint = &signed.checkpoint;
    if seq >= checkpoint.size {
        return Err(ProofError::SeqOutOfRange { seq, tree_size: checkpoint.size });
    }
    if let Some(tree) = stored_tree(log, checkpoint)
        && let Some(entry) = stored_line(log, &tree, seq)
        && let Ok(path) = merkle::inclusion_path_in(&tree, checkpoint.size, seq)
    {
        return Ok(InclusionProof {
            seq,
            tree_size: checkpoint.size,
            entry,
            path,
            checkpoint: signed.to_signed_note(),
        });
    }
    let (leaves, line) = checkpointed_leaves(log, checkpoint, Some(seq))?;
    let path = merkle::inclusion_path(&leaves, seq)
        .map_err(|_| ProofError::SeqOutOfRange { seq, tree_size: checkpoint.size })?;
    Ok(InclusionProof {
        seq,
        tree_size: checkpoint.size,
        entry: line.unwrap_or_default(),
        path,
        checkpoint: signed.to_signed_note(),
    })
}

/// `consistency OLD_SIZE`: a proof that the log as of checkpoint `signed`
/// extends its first `old_size` entries.
pub fn prove_consistency(log: &Path, signed: &SignedCheckpoint, old_size: u64) -> Result<ConsistencyProof, ProofError> {
    let checkpoint = &signed.checkpoint;
    if old_size > checkpoint.size {
        return Err(ProofError::OldSizeOutOfRange { old_size, tree_size: checkpoint.size });
    }
    if let Some(tree) = stored_tree(log, checkpoint)
        && let Ok(old_root) = tree.root_at(old_size)
        && let Ok(path) = merkle::consistency_path_in(&tree, checkpoint.size, old_size)
    {
        return Ok(ConsistencyProof {
            old_size,
            old_root,
            new_size: checkpoint.size,
            path,
            checkpoint: signed.to_signed_note(),
        });
    }
    let (leaves, _) = checkpointed_leaves(log, checkpoint, None)?;
    let old_leaves = leaves.get(..usize::try_from(old_size).unwrap_or(usize::MAX)).unwrap_or(&leaves);
    let path = merkle::consistency_path(&leaves, old_size)
        .map_err(|_| ProofError::OldSizeOutOfRange { old_size, tree_size: checkpoint.size })?;
    Ok(ConsistencyProof {
        old_size,
        old_root: merkle::root(old_leaves),
        new_size: checkpoint.size,
        path,
        checkpoint: signed.to_signed_note(),
    })
}

fn trusted_checkpoint(text: &str, key: &VerifyingKey) -> Result<Checkpoint, ProofVerifyError> {
    let signed = parse_checkpoint_bytes(text.as_bytes()).map_err(ProofVerifyError::MalformedCheckpoint)?;
    signed.verify(key).cloned().map_err(ProofVerifyError::UntrustedCheckpoint)
}

/// Verifies an inclusion proof offline: the checkpoint's signature by
/// `log_key`, the entry's form and hash, and the Merkle path to the root.
pub fn verify_inclusion_proof(
    proof: &InclusionProof,
    log_key: &VerifyingKey,
) -> Result<VerifiedInclusion, ProofVerifyError> {
    let checkpoint = trusted_checkpoint(&proof.checkpoint, log_key)?;
    if checkpoint.size != proof.tree_size {
        return Err(ProofVerifyError::TreeSizeMismatch {
            proof_size: proof.tree_size,
            checkpoint_size: checkpoint.size,
        });
    }
    let entry = Entry::from_line(proof.entry.as_bytes()).map_err(ProofVerifyError::MalformedEntry)?;
    if entry.seq != proof.seq {
        return Err(ProofVerifyError::SeqMismatch { proof_seq: proof.seq, entry_seq: entry.seq });
    }
    let computed = entry.computed_hash().map_err(ProofVerifyError::EntryEncoding)?;
    if computed != entry.hash {
        return Err(ProofVerifyError::EntryHashMismatch { stated: entry.hash, computed });
    }
    merkle::verify_inclusion(
        proof.seq,
        proof.tree_size,
        &leaf_hash(proof.entry.as_bytes()),
        &proof.path,
        &checkpoint.root,
    )
    .map_err(ProofVerifyError::Merkle)?;
    Ok(VerifiedInclusion { entry, checkpoint })
}

/// Verifies a consistency proof offline: the new checkpoint's signature by
/// `log_key`, the old tree against `old`, and the Merkle path.
pub fn verify_consistency_proof(
    proof: &ConsistencyProof,
    log_key: &VerifyingKey,
    old: OldTree<'_>,
) -> Result<VerifiedConsistency, ProofVerifyError> {
    let checkpoint = trusted_checkpoint(&proof.checkpoint, log_key)?;
    if checkpoint.size != proof.new_size {
        return Err(ProofVerifyError::TreeSizeMismatch {
            proof_size: proof.new_size,
            checkpoint_size: checkpoint.size,
        });
    }
    let trusted_old = match old {
        OldTree::SignedCheckpoint(text) => {
            let old_checkpoint = trusted_checkpoint(text, log_key)?;
            Some((old_checkpoint.size, old_checkpoint.root))
        }
        OldTree::Root { size, root } => Some((size, root)),
        OldTree::DangerouslyUnanchored => None,
    };
    if let Some((trusted_size, trusted_root)) = trusted_old
        && (trusted_size, trusted_root) != (proof.old_size, proof.old_root)
    {
        return Err(ProofVerifyError::OldTreeMismatch {
            proof_size: proof.old_size,
            proof_root: proof.old_root,
            trusted_size,
            trusted_root,
        });
    }
    merkle::verify_consistency(proof.old_size, proof.new_size, &proof.path, &proof.old_root, &checkpoint.root)
        .map_err(ProofVerifyError::Merkle)?;
    Ok(VerifiedConsistency { old_size: proof.old_size, old_root: proof.old_root, checkpoint })
}

/// `verify-proof`: verifies either kind of proof. `old` is used only for
/// consistency proofs.
pub fn verify_proof(
    proof: &AuditProof,
    log_key: &VerifyingKey,
    old: OldTree<'_>,
) -> Result<VerifiedProof, ProofVerifyError> {
    match proof {
        AuditProof::Inclusion(p) => verify_inclusion_proof(p, log_key).map(VerifiedProof::Inclusion),
        AuditProof::Consistency(p) => verify_consistency_proof(p, log_key, old).map(VerifiedProof::Consistency),
    }
}
