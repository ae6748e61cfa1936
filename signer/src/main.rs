//! `signer`: the offline half of Night Core's trust layer.
//!
//! Runs on the machine that holds the cold-storage keys: makes key pairs and
//! bundles, signs manifests, and verifies and inspects bundles anywhere. All the
//! work is in the `signer` library; this file only parses arguments, prints, and
//! maps outcomes to exit codes.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes: 0 = done / verified; 1 = verification failed (the reason is printed); 2 = usage or I/O error.

Environment: NIGHTCORE_KEY_PASSWORD supplies the password of an encrypted secret key (otherwise you are prompted on the terminal); NIGHTCORE_LOG sets the log level (error, warn, info, debug, trace).";

/// Make keys and bundles, sign them offline, and verify them anywhere.
#[derive(Debug, Parser)]
#[command(name = "signer", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Bundle(cmd::bundle::Args),
    Embed(cmd::embed::EmbedArgs),
    ExportWasmsig(cmd::wasmsig::ExportArgs),
    ExportWasmsigKey(cmd::wasmsig::ExportKeyArgs),
    Extract(cmd::embed::ExtractArgs),
    ImportWasmsigKey(cmd::wasmsig::ImportKeyArgs),
    Inspect(cmd::inspect::Args),
    Keygen(cmd::keygen::Args),
    Sign(cmd::sign::Args),
    Verify(cmd::verify::Args),
}

/// What a command concluded, mapped to the documented exit codes.
pub enum Outcome {
    Success,
    VerificationFailed,
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bundle(args) => cmd::bundle::run(args),
        Command::Embed(args) => cmd::embed::embed(args),
        Command::ExportWasmsig(args) => cmd::wasmsig::export(args),
        Command::ExportWasmsigKey(args) => cmd::wasmsig::export_key(args),
        Command::Extract(args) => cmd::embed::extract(args),
        Command::ImportWasmsigKey(args) => cmd::wasmsig::import_key(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Sign(args) => cmd::sign::run(args),
        Command::Verify(args) => cmd::verify::run(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::VerificationFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGHTCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
