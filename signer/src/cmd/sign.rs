//! `signer sign`: the offline step of the cold-storage flow. Needs nothing but
//! the bundle and the key; checks what it is about to sign first. When the
//! bundle's build provenance statement (`<bundle>.intoto.json`, written by
//! `cargo xtask sign --request-only`) is beside it, the same key signs that
//! too, after checking it is about this very module.

use anyhow::{Context, bail};
use std::path::PathBuf;

use signer::bundle::write_signature;
use signer::dsse::Envelope;
use signer::fsutil::{FileMode, atomic_write};
use signer::intoto::{Found, check_subject, envelope_path, read_envelope};
use signer::keyfile::{PasswordSource, load_secret_key};
use signer::manifest::Manifest;

use crate::Outcome;

/// Sign a bundle's manifest.json, adding signatures/<KEYID>.minisig (verifiable with `minisign -Vm manifest.json -x signatures/<KEYID>.minisig -p key.pub`), and the build provenance statement <BUNDLE>.intoto.json when it is beside the bundle.
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
    /// The build provenance statement this run also signed, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    statement: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let (bundle, manifest) = crate::cmd::read_bundle_to_sign(&args.bundle)?;
    // Everything is checked before the key is unlocked or anything written.
    let statement = read_statement(&args.bundle, &manifest)?;
    let key = load_secret_key(&args.key, PasswordSource::EnvironmentOrPrompt)?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = key.sign(&bundle.manifest, &format!("timestamp:{timestamp}\tfile:manifest.json\tprehashed"))?;
    let path = write_signature(&args.bundle, &signature)?;
    let statement = match statement {
        Some((statement_path, mut envelope)) => {
            envelope.sign(&key);
            atomic_write(&statement_path, &envelope.to_json_bytes(), FileMode::Public)
                .with_context(|| format!("cannot write {}", statement_path.display()))?;
            Some(statement_path)
        }
        None => None,
    };
    if args.json {
        crate::cmd::print_json(&SignJson {
            signature: path,
            key_id: key.key_id().to_string(),
            name: &manifest.name,
            version: manifest.version,
            module_sha256: &manifest.module.sha256,
            statement,
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
        if let Some(statement) = &statement {
            println!("signed the build provenance statement {}", statement.display());
        }
    }
    Ok(Outcome::Success)
}

/// The statement beside `bundle`, checked to be about `manifest`'s module;
/// `None` when there is none (a bundle made by hand or before statements).
fn read_statement(bundle: &std::path::Path, manifest: &Manifest) -> anyhow::Result<Option<(PathBuf, Envelope)>> {
    let path = envelope_path(bundle);
    let envelope = match read_envelope(bundle)
        .with_context(|| format!("cannot read the build provenance statement {}", path.display()))?
    {
        Found::Missing => return Ok(None),
        Found::Unreadable { error, .. } => bail!("refusing to sign: {} is unreadable: {error}", path.display()),
        Found::Envelope(envelope) => envelope,
    };
    check_subject(&envelope, &manifest.module.sha256)
        .with_context(|| format!("refusing to sign the build provenance statement {}", path.display()))?;
    Ok(Some((path, envelope)))
}
