//! `cargo xtask`: Night Core's build tasks in Rust rather than shell, so they
//! run the same on every machine. One subcommand per file under `cmd/`; the
//! work itself is in the `xtask` library.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit status: 0 = done / verified / identical, 1 = a definite no \
    (for example a module that does not rebuild to identical bytes), 2 = usage, I/O or build error.";

/// Night Core's build tasks: reproducible module builds and their verification.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand, each backed by `cmd/<name>.rs`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Times a clean plain cargo build of one module against verify-reproducible of it.
    BenchBuild(cmd::bench_build::Args),
    /// Builds tenant modules for wasm32-wasip1 reproducibly into target/nightcore/.
    Build(cmd::build::Args),
    /// Runs the whole pipeline on the example modules in a throwaway directory.
    Demo(cmd::demo::Args),
    /// Makes a minisign key pair (a thin wrapper over the signer library).
    Keygen(cmd::keygen::Args),
    /// Builds, bundles into dist/<module>/<version>/ and signs (or prepares for offline signing).
    Sign(cmd::sign::Args),
    /// Runs the whole test suite, installing what it needs first (minisign, the wasm target).
    Test(cmd::test::Args),
    /// Rebuilds signed modules from source at another path and checks the bytes are identical.
    VerifyReproducible(cmd::verify_reproducible::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BenchBuild(args) => cmd::bench_build::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Sign(args) => cmd::sign::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::VerifyReproducible(args) => cmd::verify_reproducible::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
