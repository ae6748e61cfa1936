//! `runtime verify-receipt FILE`: checks a receipt's signature against the
//! trust store's log keys.
//!
//! Exit codes: 0 = the receipt is signed by a trusted log key; 1 = it is not
//! (malformed, untrusted key, bad signature); 2 = usage or I/O error.

use anyhow::Context;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use runtime::receipt::{MAX_RECEIPT_BYTES, Receipt, SignedReceipt};
use signer::config::NodeConfig;
use signer::fsutil::read_capped;

use super::exec::print_json;
use super::host::trust_store;

/// Arguments of `runtime verify-receipt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receipt file written by `runtime exec --receipt`.
    receipt: PathBuf,

    /// The trust store directory (default: trust_dir from the config); the signer must be one of its log_keys.
    #[arg(long, value_name = "DIR")]
    trust: Option<PathBuf>,

    /// The node configuration file (default: ./nightcore.toml when it exists).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Prints `{"valid": …, "reason": …, "message": …, "receipt": …}` on stdout.
    #[arg(long)]
    json: bool,
}

/// `--json` output of `verify-receipt`.
#[derive(Debug, Serialize)]
struct VerifyJson<'a> {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<&'a Receipt>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load(args.config.as_deref()).context("cannot load the node configuration")?;
    let trust = trust_store(args.trust.as_deref(), &config)?;
    let bytes = read_capped(&args.receipt, MAX_RECEIPT_BYTES as u64)
        .with_context(|| format!("cannot read the receipt {}", args.receipt.display()))?;
    let result = SignedReceipt::from_bytes(&bytes);
    let verified = result
        .as_ref()
        .map_err(|e| (e.reason_code(), e.to_string()))
        .and_then(|signed| signed.verify(&trust).map_err(|e| (e.reason_code(), e.to_string())));
    let json = match &verified {
        Ok(receipt) => VerifyJson { valid: true, reason: None, message: None, receipt: Some(receipt) },
        Err((reason, message)) => {
            VerifyJson { valid: false, reason: Some(reason), message: Some(message.clone()), receipt: None }
        }
    };
    if args.json {
        print_json(&json)?;
    } else {
        match &verified {
            Ok(receipt) => writeln!(
                std::io::stdout().lock(),
                "valid receipt: {} v{} module {} {} (deterministic: {})",
                receipt.tenant,
                receipt.version,
                receipt.module_sha256,
                receipt.outcome,
                receipt.deterministic
            )?,
            Err((reason, message)) => eprintln!("invalid receipt ({reason}): {message}"),
        }
    }
    Ok(ExitCode::from(if verified.is_ok() { 0 } else { 1 }))
}
