//! One file per `cargo xtask` subcommand: argument parsing, output and exit
//! codes live here; the work is done by the library (`xtask::…`).

pub mod bench_build;
pub mod build;
pub mod demo;
pub mod keygen;
pub mod sign;
pub mod test;
pub mod verify_reproducible;

use anyhow::{Context, Result};
use std::io::Write;

/// Writes a result to stdout. A closed pipe (`cargo xtask build | head`) is
/// not an error: the reader has what it wanted.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}
