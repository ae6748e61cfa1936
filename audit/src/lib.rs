//! Night Core's audit log: one tamper-evident, append-only record of every
//! event of the system (a module signed, a bundle verified or refused, a
//! tenant run and how it ended, drift, rollbacks, upgrades).
//!
//! The runtime, the guardian and xtask all append to it through this library;
//! `guardian audit …` is a thin command line over it:
//!
//! | command | library |
//! |---|---|
//! | `verify [LOG]` | [`verify_log`] → [`VerifyReport`] (or [`ReadError`]) |
//! | `show [--kind K] [--since T]` | [`read_entries`] with a [`Filter`] |
//! | `checkpoint` | [`AuditLog::write_checkpoint`] |
//! | `prove SEQ` | [`prove_inclusion`] → [`InclusionProof`] |
//! | `consistency OLD_SIZE` | [`prove_consistency`] → [`ConsistencyProof`] |
//! | `verify-proof` | [`verify_proof`] on an [`AuditProof`] read from JSON |
//!
//! # Format
//! - The log is JSON Lines: each line is the canonical JSON of an [`Entry`]
//!   with keys `actor` (`{"binary":…,"host":…}`), `data` (an object), `hash`,
//!   `kind` (dotted lower-case name), `prev`, `seq` (0-based, contiguous) and
//!   `time` (`YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds). Hashes are
//!   lower-case hex.
//! - `hash` = SHA-256([`ENTRY_HASH_DOMAIN`] ‖ raw `prev` ‖ canonical entry
//!   without `hash`); `prev` is the previous entry's `hash`, zeros for the
//!   first. The line is canonical, so the verifier hashes it in place.
//! - An RFC 6962 Merkle tree ([`merkle`]) over the lines (leaf = SHA-256(0x00
//!   ‖ line)) is committed to by a signed [`checkpoint`] in the C2SP
//!   `tlog-checkpoint`/`signed-note` format, in `<log>.checkpoint`.
//! - Beside the log, [`tree`] keeps the tree's stored hashes and each
//!   entry's offset (`<log>.hashes`, `<log>.index`), so that appends, roots
//!   and proofs read O(log n) hashes; both are derived from the log and
//!   rebuilt from it when missing.
//! - Lines are capped at [`MAX_LINE_BYTES`].
//!
//! # Guarantees
//! Committed bytes are never rewritten; the only truncation is of a torn,
//! never-committed tail after a crash, which is saved aside first and
//! recorded by an `audit.recovered` entry (see [`AuditLog`]). Verification
//! names the first bad seq and a precise [`TamperReason`]. The library never
//! prints; it logs recoveries through `tracing`.
#![forbid(unsafe_code)]
// Libraries never print: what reaches stdout and stderr is the binaries' choice
// (ARCHITECTURE.md, "Libraries do the work").
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod checkpoint;
mod entry;
mod error;
mod hash;
mod host;
pub mod kinds;
mod lines;
mod log;
pub mod merkle;
mod proof;
mod read;
mod scan;
pub mod tiles;
pub mod tree;
mod verify;
mod walk;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifyError, SignedCheckpoint, default_checkpoint_path,
    parse_verifier_key, verifier_key_string,
};
pub use entry::{Actor, ENTRY_HASH_DOMAIN, Entry, Event, EventError};
pub use error::{AuditError, ReadError};
pub use hash::{HashParseError, Sha256Hash};
pub use host::{HostLog, HostLogError};
pub use log::{AppendReceipt, AuditLog, LogOptions, Recovery, TORN_WRITE_HOOK_ENV};
pub use proof::{
    AuditProof, ConsistencyProof, InclusionProof, MAX_PROOF_BYTES, OldTree, ProofError, ProofReadError,
    ProofVerifyError, VerifiedConsistency, VerifiedInclusion, VerifiedProof, load_checkpoint, prove_consistency,
    prove_inclusion, verify_consistency_proof, verify_inclusion_proof, verify_proof,
};
pub use read::{EntryReader, Filter, ShowError, read_entries};
pub use scan::{EntryParseError, MAX_LINE_BYTES, MAX_NESTING, is_valid_kind};
pub use verify::{
    AppendDefect, CheckpointKey, IntactLog, TamperReason, Tampering, VerifyReport, checkpoint_key, verify_log,
};
