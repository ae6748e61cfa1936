//! End-to-end tests of the audit library over real files: tamper detection,
//! crash recovery, concurrent writers, proofs and `show`.

// Everything in this crate is test code, helpers included: a failed setup
// step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod concurrency;
mod crash;
mod mutation;
mod proofs;
mod recovery;
mod show;
mod support;
mod tamper;
mod tiles;
mod tree;
