//! `guardian`: keeps deployed tenant bundles at their last verified version.
//!
//! All the work is in the `guardian` library; this file parses arguments,
//! sets up logging, and maps outcomes to the documented exit codes. One
//! module per subcommand lives in `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const AFTER_HELP: &str = "Exit codes: scan: 0 = clean (accepted signed upgrades count as clean), 1 = drift found (repaired or not, as --repair says) or the audit log tampered, 2 = usage or I/O error, or a state that fails its integrity check. watch: 0 after SIGTERM or SIGINT, 2 on error. status: 0, or 2 on error. gc, retire: 0, or 2 on error (an unknown tenant for retire; `locked` while the daemon holds the state). report: 0 = page written and the log intact, 1 = page written but the log is tampered, 2 = error. audit: see `guardian audit --help`.

Environment: NIGHTCORE_LOG sets the log level on stderr (error, warn, info, debug, trace; default info for watch, warn otherwise). NIGHTCORE_TEST_ROLLBACK_PAUSE_MS is a test hook: it pauses every rollback for that long after staging and again after the swap; never set it in production.";

/// Detect drift in deployed bundles, roll back to the last verified version, and accept only properly signed upgrades.
#[derive(Debug, Parser)]
#[command(name = "guardian", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand, in alphabetical order.
#[derive(Debug, Subcommand)]
enum Command {
    Audit(cmd::audit::Args),
    Gc(cmd::gc::Args),
    Report(cmd::report::Args),
    Retire(cmd::retire::Args),
    Scan(cmd::scan::Args),
    Status(cmd::status::Args),
    Watch(cmd::watch::Args),
}

/// What a command concluded, mapped to the documented exit codes.
pub enum Outcome {
    Clean,
    DriftFound,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Watch(_) => "info",
        _ => "warn",
    };
    init_logging(default_level);
    let result = match cli.command {
        // The audit subcommands have exit codes of their own (0 intact, 1 tampered, 2 error).
        Command::Audit(args) => {
            return cmd::audit::run(args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            });
        }
        Command::Gc(args) => cmd::gc::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Retire(args) => cmd::retire::run(args),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Watch(args) => cmd::watch::run(args),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::DriftFound) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGHTCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only on a terminal: logs that are piped or collected stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
