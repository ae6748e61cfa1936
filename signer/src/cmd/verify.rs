//! `signer verify`: the full bundle check, anywhere. Also checks modules signed
//! in the WebAssembly tool-conventions format (`wasmsign2`) against the same
//! trust store and threshold.

use std::path::PathBuf;

use signer::bundle::{BundleBytes, ReadLimits};
use signer::embed::SECTION_NAME;
use signer::sections::custom_sections;
use signer::trust::TrustStore;
use signer::verify::verify_bundle;
use signer::wasmsig::{starts_with_signature_section, verify_module};

use crate::Outcome;

/// Verify a bundle against a trust store: hash, signatures, k-of-n threshold, expiry and revocation.
///
/// A bundle is a directory or a single-file module made by `signer embed`. A .wasm file whose first section is a custom section named `signature` is checked as a module signed in the WebAssembly tool-conventions format (by `wasmsign2` or `signer export-wasmsig`): the same trust store, threshold of distinct keys and revocation apply. Such a module carries no manifest, so there is no name, version, expiry or capability to check, and the runtime does not run it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trust store directory (*.pub files and trust.toml).
    #[arg(long)]
    trust: PathBuf,
    /// The bundle directory, a single-file module made by `signer embed`, or a module signed in the tool-conventions format.
    bundle: PathBuf,
    /// Print the result as one JSON object (see `VerifyJson` in the source for its fields).
    #[arg(long)]
    json: bool,
}

/// `--json` output. `verified` and `format` (`"bundle"`, or `"wasmsig"` for a
/// tool-conventions signed module) are always present; on success the
/// bundle's identity and signers follow, on failure `reason` (a stable
/// snake_case code) and `message`. A wasmsig module has no manifest, so `name`,
/// `version` and `manifest_sha256` are absent; it has `signed_sha256`, the hash
/// its signatures cover, and `module_sha256` is the hash of the module without
/// its signature section.
#[derive(serde::Serialize)]
struct VerifyJson {
    bundle: PathBuf,
    format: &'static str,
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
    signed_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let trust = TrustStore::load(&args.trust)?;
    let limits = ReadLimits::default();
    // A file is read once. Our bundle section (last) decides first: a single
    // file whose module happens to carry a tool-conventions `signature`
    // section is still judged by its manifest, as the runtime judges it.
    let read = if args.bundle.is_dir() {
        BundleBytes::read(&args.bundle, &limits)
    } else {
        match BundleBytes::read_single_file_bytes(&args.bundle, &limits) {
            Ok(file) if is_wasmsig_module(&file) => return run_wasmsig(args, &file, &trust),
            Ok(file) => BundleBytes::from_single_file(&args.bundle, file, &limits),
            Err(e) => Err(e),
        }
    };
    // Bytes that are there but wrong (a single file whose bundle section is
    // malformed, a file over its cap) fail verification with a reason; only
    // what could not be read at all is an I/O error.
    let result = match read {
        Ok(bundle) => {
            verify_bundle(bundle, &trust, time::OffsetDateTime::now_utc()).map_err(|e| (e.reason_code(), e.to_string()))
        }
        Err(e) if e.is_about_content() => Err((e.reason_code(), e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let mut out = VerifyJson::new(args.bundle, "bundle", result.is_ok());
    match result {
        Ok(verified) => {
            if !args.json {
                println!(
                    "verified {} v{} (module sha256 {}) signed by {}",
                    verified.manifest().name,
                    verified.manifest().version,
                    verified.module_sha256(),
                    verified.signers().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                );
            }
            out.name = Some(verified.manifest().name.clone());
            out.version = Some(verified.manifest().version);
            out.module_sha256 = Some(verified.module_sha256().to_string());
            out.manifest_sha256 = Some(verified.manifest_sha256().to_string());
            out.signers = Some(verified.signers().iter().map(ToString::to_string).collect());
        }
        Err((reason, message)) => {
            if !args.json {
                println!("verification failed ({reason}): {}", signer::text::escape(&message));
            }
            out.reason = Some(reason);
            out.message = Some(message);
        }
    }
    finish(&out, args.json)
}

impl VerifyJson {
    fn new(bundle: PathBuf, format: &'static str, verified: bool) -> Self {
        Self {
            bundle,
            format,
            verified,
            name: None,
            version: None,
            module_sha256: None,
            manifest_sha256: None,
            signed_sha256: None,
            signers: None,
            reason: None,
            message: None,
        }
    }
}

fn finish(out: &VerifyJson, json: bool) -> anyhow::Result<Outcome> {
    if json {
        crate::cmd::print_json(out)?;
    }
    Ok(if out.verified { Outcome::Success } else { Outcome::VerificationFailed })
}

/// The detection rule: the first section is a tool-conventions `signature`
/// section and no bundle section of ours is present (ours, last, decides).
fn is_wasmsig_module(file: &[u8]) -> bool {
    starts_with_signature_section(file) && !custom_sections(file, SECTION_NAME).is_ok_and(|found| found.count > 0)
}

/// A module whose first section is a tool-conventions `signature` section
/// (and that carries no bundle section of ours).
fn run_wasmsig(args: Args, file: &[u8], trust: &TrustStore) -> anyhow::Result<Outcome> {
    let result = verify_module(file, trust);
    let mut out = VerifyJson::new(args.bundle, "wasmsig", result.is_ok());
    match result {
        Ok(verified) => {
            let signers: Vec<String> = verified.signers.iter().map(ToString::to_string).collect();
            if !args.json {
                println!(
                    "verified wasmsig module (module sha256 {}, signed sha256 {}) signed by {}",
                    verified.module_sha256,
                    verified.signed_sha256,
                    signers.join(", ")
                );
                println!(
                    "note: a wasmsig module carries no manifest (no name, version, expiry or capabilities); the runtime runs signed bundles only"
                );
            }
            out.module_sha256 = Some(verified.module_sha256);
            out.signed_sha256 = Some(verified.signed_sha256);
            out.signers = Some(signers);
        }
        Err(e) => {
            if !args.json {
                println!("verification failed ({}): {}", e.reason_code(), signer::text::escape(&e.to_string()));
            }
            out.reason = Some(e.reason_code());
            out.message = Some(e.to_string());
        }
    }
    finish(&out, args.json)
}
