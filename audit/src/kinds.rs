//! Well-known event kinds, so that writers and `show --kind` agree on the
//! spelling. Any dotted lower-case name is accepted; these are the ones Night
//! Core's own binaries write.

/// A module was signed (xtask signing pipeline).
pub const MODULE_SIGNED: &str = "module.signed";
/// A bundle passed verification.
pub const BUNDLE_VERIFIED: &str = "bundle.verified";
/// A bundle failed verification and was not run.
pub const BUNDLE_REFUSED: &str = "bundle.refused";
/// A tenant run started.
pub const RUN_STARTED: &str = "run.started";
/// A precompiled artifact in the compile cache failed its checks (planted,
/// copied or corrupted) and was moved aside; the module was compiled again
/// from the verified bytes (`data`: `reason`, `entry`, `moved_to`, `detail`).
pub const CACHE_REJECTED: &str = "cache.rejected";
/// A tenant run ended; `data` says how (exit status, trap, limit).
pub const RUN_FINISHED: &str = "run.finished";
/// A bundle was refused before running (verification, policy, validation).
pub const RUN_REFUSED: &str = "run.refused";
/// A rebuild from source was compared with signed bytes (xtask).
pub const MODULE_REBUILT: &str = "module.rebuilt";
/// The guardian found deployed bytes that differ from the signed ones.
pub const DRIFT_DETECTED: &str = "drift.detected";
/// The guardian restored a known-good version.
pub const ROLLBACK_COMPLETED: &str = "rollback.completed";
/// A signed upgrade (threshold of distinct keys, above the rollback floor) was accepted.
pub const MODULE_UPGRADED: &str = "module.upgraded";
/// A writer moved a torn, never-committed tail aside (written by this
/// library; `data`: `offset`, `length`, `sha256`, `saved_to`).
pub const AUDIT_RECOVERED: &str = "audit.recovered";
/// A writer rebuilt the Merkle state beside the log (`<log>.hashes`,
/// `<log>.index`) with one walk over every entry, because the state was
/// missing or did not match the log (written by this library; `data`:
/// `reason` (`missing` or `disagreed_with_log`), `entries`).
pub const AUDIT_TREE_REBUILT: &str = "audit.tree_rebuilt";
