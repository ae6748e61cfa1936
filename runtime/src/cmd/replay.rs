//! `runtime replay RECEIPT BUNDLE`: runs a bundle again, deterministically,
//! with the arguments a receipt records, and checks that the outcome, fuel and
//! output hashes are the same.
//!
//! Exit codes: 0 = reproduced; 1 = not reproduced, or the receipt is invalid
//! or was not made with `--deterministic`; 125 = the bundle was refused
//! (verification, policy, validation); 2 = usage or I/O error.

use anyhow::Context;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use runtime::receipt::{MAX_RECEIPT_BYTES, ReplayError, SignedReceipt, replay};
use runtime::{EngineOptions, ExecOptions, NightEngine, Verification, wasi_linker};
use signer::fsutil::read_capped;

use super::exec::{EXIT_REFUSED, print_json, refusal_exit_code};

/// Arguments of `runtime replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receipt file of the original run (made with `exec --deterministic --receipt`).
    receipt: PathBuf,

    /// The bundle to run again (directory or single-file module); it is verified like any other.
    bundle: PathBuf,

    #[command(flatten)]
    host: super::host::HostArgs,

    /// Prints `{"reproduced": …, "differences": […], "reason": …, "message": …}` on stdout.
    #[arg(long)]
    json: bool,
}

/// `--json` output of `replay`.
#[derive(Debug, Serialize)]
struct ReplayJson {
    reproduced: bool,
    differences: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let host = args.host.load()?;
    let trust = args.host.trust_store(&host.config)?;
    let bytes = read_capped(&args.receipt, MAX_RECEIPT_BYTES as u64)
        .with_context(|| format!("cannot read the receipt {}", args.receipt.display()))?;
    let checked = SignedReceipt::from_bytes(&bytes).and_then(|signed| signed.verify(&trust).cloned());
    let (json, code) = match checked {
        Err(e) => (fail(e.reason_code(), e.to_string()), 1),
        Ok(original) => {
            let mut options = ExecOptions::new(Verification::Required(&trust), &host.policies);
            options.cache = host.cache.as_ref();
            let engine = NightEngine::new(EngineOptions::default()).context("cannot start the wasm engine")?;
            let linker = wasi_linker(&engine).context("cannot set up WASI")?;
            match replay(&engine, &linker, &original, &args.bundle, &options) {
                Ok(replayed) => {
                    let reproduced = replayed.differences.is_empty();
                    (
                        ReplayJson { reproduced, differences: replayed.differences, reason: None, message: None },
                        if reproduced { 0 } else { 1 },
                    )
                }
                Err(ReplayError::Refused(refusal)) => {
                    let code = refusal_exit_code(&refusal);
                    (fail(refusal.reason_code(), refusal.to_string()), code)
                }
                Err(e @ ReplayError::NotDeterministic) => (fail("not_deterministic", e.to_string()), 1),
                Err(e) => (fail("malformed_receipt", e.to_string()), 1),
            }
        }
    };
    if args.json {
        print_json(&json)?;
    } else if json.reproduced {
        writeln!(std::io::stdout().lock(), "reproduced: outcome, fuel and output hashes match the receipt")?;
    } else if let (Some(reason), Some(message)) = (json.reason, &json.message) {
        let what = if code == EXIT_REFUSED { "refused" } else { "not reproduced" };
        eprintln!("{what} ({reason}): {message}");
    } else {
        eprintln!("not reproduced: {} differ", json.differences.join(", "));
    }
    Ok(ExitCode::from(code))
}

fn fail(reason: &'static str, message: String) -> ReplayJson {
    ReplayJson { reproduced: false, differences: Vec::new(), reason: Some(reason), message: Some(message) }
}
