//! End-to-end tests: the real binaries over real files in temporary directories.
//!
//! The binaries are found next to this test executable (`target/<profile>/`);
//! `cargo xtask test` builds them first. A missing binary fails the test with
//! that instruction rather than skipping it.

// Test helpers outside #[test] functions are not covered by clippy's
// allow-unwrap-in-tests; a panic is the right failure in a test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit_cli;
mod dashboard;
mod help;
mod hostile_files;
mod pipeline;
mod reason_codes;
mod secrets;
mod separate_users;
mod signer_cli;
mod support;
mod tidy;
mod wasmsig;
