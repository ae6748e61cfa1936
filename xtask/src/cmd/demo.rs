//! `cargo xtask demo`: placeholder until the runtime and guardian steps are wired.

use anyhow::Result;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode> {
    anyhow::bail!("demo is not wired yet")
}
