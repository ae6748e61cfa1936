//! Integration tests of the runtime: hostile guests against the library, and
//! the `runtime` binary end to end over real bundles in temporary directories.

mod cache;
mod cli;
mod contain;
mod support;
