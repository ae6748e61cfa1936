//! Integration tests of the runtime: hostile guests against the library, and
//! the `runtime` binary end to end over real bundles in temporary directories.
// Helpers outside `#[test]` functions are test code too: a failed setup step
// should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod cli;
mod contain;
mod hostile;
mod pipeline;
mod receipts;
mod support;
mod tidy;
