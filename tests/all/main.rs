//! End-to-end tests: the real binaries over real files in temporary directories.
//!
//! The binaries are found next to this test executable (`target/<profile>/`);
//! `cargo xtask test` builds them first. A missing binary fails the test with
//! that instruction rather than skipping it.

mod pipeline;
mod signer_cli;
mod support;
