//! One file per `cargo xtask` subcommand: argument parsing, output and exit
//! codes live here; the work is done by the library (`xtask::…`).

pub mod bench_build;
pub mod build;
pub mod verify_reproducible;
