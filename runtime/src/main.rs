//! `runtime`: the command line over the runtime library. It parses arguments,
//! prints results (`--json` or text) and turns outcomes into exit codes; the
//! library does the work.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Night Core's runtime: verifies signed WebAssembly bundles and runs them under their signed, host-narrowed policy.
#[derive(Debug, Parser)]
#[command(name = "runtime", version, after_help = cmd::exec::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand, each backed by `cmd/<name>.rs`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies a bundle (or every bundle of a deploy directory with --all) and runs it.
    #[command(after_help = cmd::exec::EXIT_CODES_HELP)]
    Exec(cmd::exec::Args),
    /// Runs a bundle again deterministically and checks it reproduces a receipt.
    #[command(
        after_help = "Exit status: 0 = reproduced; 1 = not reproduced, or the receipt is invalid or not deterministic; \
125 = the bundle was refused; 2 = usage or I/O error."
    )]
    Replay(cmd::replay::Args),
    /// Checks that a receipt is signed by one of the trust store's log keys.
    #[command(
        after_help = "Exit status: 0 = valid; 1 = invalid (malformed, untrusted key, bad signature); 2 = usage or I/O error."
    )]
    VerifyReceipt(cmd::verify_receipt::Args),
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Exec(args) => cmd::exec::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::VerifyReceipt(args) => cmd::verify_receipt::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cmd::exec::EXIT_USAGE_OR_IO)
        }
    }
}

/// Logs go to stderr; the level comes from `NIGHTCORE_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGHTCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
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
