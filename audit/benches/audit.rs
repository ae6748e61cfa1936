//! Placeholder until the benchmarks are written.
fn main() {}
