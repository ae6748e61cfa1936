//! `signer sign`: the offline step of the cold-storage flow. Needs nothing but
//! the bundle and the key; checks what it is about to sign first.

use anyhow::{Context, bail};
use std::path::PathBuf;

use signer::bundle::{BundleBytes, ReadLimits, write_signature};
use signer::keyfile::{PasswordSource, load_secret_key};
use signer::manifest::{Manifest, ModuleDigest};

use crate::Outcome;

/// Sign a bundle's manifest.json, adding signatures/<KEYID>.minisig (verifiable with `minisign -Vm manifest.json -x signatures/<KEYID>.minisig -p key.pub`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The secret key file (from `signer keygen` or `minisign -G`).
    #[arg(long)]
    key: PathBuf,
    /// The bundle directory.
    bundle: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct SignJson<'a> {
    signature: PathBuf,
    key_id: String,
    name: &'a str,
    version: u64,
    module_sha256: &'a str,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let bundle = BundleBytes::read(&args.bundle, &ReadLimits::default())?;
    let manifest = Manifest::from_bytes(&bundle.manifest).context("refusing to sign a malformed manifest")?;
    // Sign only what matches: a signer must never approve a manifest whose module
    // was swapped on the way to the offline machine.
    let actual = ModuleDigest::of(&bundle.module);
    if actual != manifest.module {
        bail!(
            "refusing to sign: module.wasm has sha256 {} ({} bytes) but the manifest names {} ({} bytes)",
            actual.sha256,
            actual.size,
            manifest.module.sha256,
            manifest.module.size
        );
    }
    let key = load_secret_key(&args.key, PasswordSource::EnvironmentOrPrompt)?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = key.sign(&bundle.manifest, &format!("timestamp:{timestamp}\tfile:manifest.json\tprehashed"))?;
    let path = write_signature(&args.bundle, &signature)?;
    if args.json {
        crate::cmd::print_json(&SignJson {
            signature: path,
            key_id: key.key_id().to_string(),
            name: &manifest.name,
            version: manifest.version,
            module_sha256: &manifest.module.sha256,
        })?;
    } else {
        println!(
            "signed {} v{} (module sha256 {}) with key {}",
            manifest.name,
            manifest.version,
            manifest.module.sha256,
            key.key_id()
        );
        println!("wrote {}", path.display());
    }
    Ok(Outcome::Success)
}
