//! The trust layer of Night Core: minisign-format Ed25519 keys and signatures,
//! signed manifests, bundles, the trust store, and bundle verification.
//!
//! Everything another crate needs in order to decide whether bytes may run lives
//! here, so that the runtime, the guardian and the build pipeline share one
//! verifier and one set of error kinds.
#![forbid(unsafe_code)]
// Libraries never print: what reaches stdout and stderr is the binaries' choice
// (ARCHITECTURE.md, "Libraries do the work").
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod bundle;
pub mod canonical;
pub mod config;
pub mod dsse;
pub mod embed;
pub mod fsutil;
pub mod intoto;
pub mod keyfile;
pub mod manifest;
pub mod minisign;
pub mod sections;
pub mod text;
pub mod trust;
pub mod verify;
pub mod wasmsig;
