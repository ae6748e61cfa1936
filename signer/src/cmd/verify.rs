//! `signer verify`: the full bundle check, anywhere.

use std::path::PathBuf;

use signer::bundle::{BundleBytes, ReadLimits};
use signer::trust::TrustStore;
use signer::verify::verify_bundle;

use crate::Outcome;

/// Verify a bundle against a trust store: hash, signatures, k-of-n threshold, expiry and revocation.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trust store directory (*.pub files and trust.toml).
    #[arg(long)]
    trust: PathBuf,
    /// The bundle directory, or a single-file module made by `signer embed`.
    bundle: PathBuf,
    /// Print the result as one JSON object (see `VerifyJson` in the source for its fields).
    #[arg(long)]
    json: bool,
}

/// `--json` output. `verified` is always present; on success the bundle's
/// identity and signers follow, on failure `reason` (a stable snake_case code)
/// and `message`.
#[derive(serde::Serialize)]
struct VerifyJson {
    bundle: PathBuf,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    module_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let trust = TrustStore::load(&args.trust)?;
    let bundle = BundleBytes::read_any(&args.bundle, &ReadLimits::default())?;
    let result = verify_bundle(bundle, &trust, time::OffsetDateTime::now_utc());
    let mut out = VerifyJson {
        bundle: args.bundle,
        verified: result.is_ok(),
        name: None,
        version: None,
        module_sha256: None,
        manifest_sha256: None,
        signers: None,
        reason: None,
        message: None,
    };
    match result {
        Ok(verified) => {
            if !args.json {
                println!(
                    "verified {} v{} (module sha256 {}) signed by {}",
                    verified.manifest.name,
                    verified.manifest.version,
                    verified.module_sha256,
                    verified.signers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            out.name = Some(verified.manifest.name);
            out.version = Some(verified.manifest.version);
            out.module_sha256 = Some(verified.module_sha256);
            out.manifest_sha256 = Some(verified.manifest_sha256);
            out.signers = Some(verified.signers.iter().map(ToString::to_string).collect());
        }
        Err(e) => {
            if !args.json {
                println!("verification failed ({}): {e}", e.reason_code());
            }
            out.reason = Some(e.reason_code());
            out.message = Some(e.to_string());
        }
    }
    if args.json {
        crate::cmd::print_json(&out)?;
    }
    Ok(if out.verified { Outcome::Success } else { Outcome::VerificationFailed })
}
