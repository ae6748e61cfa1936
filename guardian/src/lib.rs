//! Night Core's guardian: keeps every deployed tenant bundle at its last
//! verified version, accepting only properly signed upgrades, and keeps the
//! audit log from being rewritten.
//!
//! # Model
//! A deploy directory holds one bundle per tenant (`DEPLOY/<tenant>/`). The
//! guardian's state directory ([`state`]) records, per tenant, the last
//! verified version, its files and hashes, and the rollback floor (the
//! highest version ever accepted), and keeps every verified version in a
//! content-addressed [`store`]. On the first run (empty state) every bundle
//! that verifies becomes its tenant's first verified version: trust on first
//! verification, which is sound because acceptance still needs the
//! threshold of trusted signatures. A bundle that does not verify on the
//! first run has nothing to roll back to and is quarantined.
//!
//! Any change ([`drift`]) is judged by [`decide`]: a valid upgrade (verifies
//! against the trust store with its threshold of distinct keys, no revoked
//! key, not expired, version above the floor) is accepted; anything else is
//! moved to [`quarantine`] and the last verified version is put back by an
//! atomic directory exchange ([`restore`]). Every decision is an event
//! ([`events`]) in the audit log, whose own integrity is kept by a verified
//! mirror ([`audit_mirror`]). [`Guardian`] does one check; [`watch::Daemon`]
//! runs them on file events and on a timer.
//!
//! # Invariants
//! - A tenant path only ever holds bytes the guardian found there or bytes it
//!   verified itself; a restore replaces the whole directory in one rename,
//!   so a crash never leaves a mix.
//! - The store only restores signed bytes: every entry is re-hashed when
//!   read and re-verified when the guardian starts.
//! - Refused files are never deleted: they go to quarantine as evidence.
//! - The library never prints; it logs through `tracing` and hands events to
//!   an observer.
//!
//! # Risks, deliberately accepted
//! - `state.json` carries a hash, not a signature: whoever can write the
//!   state directory can lower a rollback floor (but cannot make the store
//!   restore unsigned bytes).
//! - Between the check that finds drift and the exchange that repairs it, a
//!   legitimate deployer may finish writing an upgrade; it is then
//!   quarantined and must be deployed again. Deploy by renaming a complete
//!   bundle directory into place (or `renameat2` exchange) to avoid this.
#![forbid(unsafe_code)]
// Libraries never print: what reaches stdout and stderr is the binaries' choice
// (ARCHITECTURE.md, "Libraries do the work").
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod audit_mirror;
pub mod decide;
pub mod digest;
pub mod drift;
pub mod events;
pub mod gc;
mod guardian;
pub mod quarantine;
pub mod report;
pub mod restore;
pub mod snapshot;
pub mod state;
pub mod store;
#[cfg(test)]
mod testkit;
pub mod watch;

pub use decide::{Admission, Refusal};
pub use guardian::{
    Action, AuditOptions, Guardian, GuardianError, GuardianOptions, ScanReport, TenantOutcome, TestHooks,
};
pub use state::{State, StateError, read_state};

/// Whether a check may change the deploy tree and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Accept upgrades, roll back and quarantine drift, restore a tampered audit log.
    Repair,
    /// Accept upgrades into the state, but only report drift and tampering.
    ReportOnly,
}
