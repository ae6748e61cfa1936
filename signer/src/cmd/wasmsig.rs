//! `signer export-wasmsig`, `signer export-wasmsig-key` and `signer
//! import-wasmsig-key`: between our keys and bundles and the WebAssembly
//! tool-conventions signature format that the `wasmsign2` command line speaks.
//! The format itself is in `signer::wasmsig`; `signer verify` reads such modules.

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use signer::bundle::ReadLimits;
use signer::fsutil::{FileMode, atomic_write, atomic_write_new, read_capped};
use signer::keyfile::{PasswordSource, load_public_key, load_secret_key};
use signer::minisign::MAX_KEY_FILE_BYTES;
use signer::wasmsig::{
    SignedModule, import_public_key, imported_key_file_text, wasmsign2_key_id, wasmsign2_public_key,
};

use crate::Outcome;

/// Sign a module with our key in the WebAssembly tool-conventions format, for `wasmsign2 verify`.
///
/// Writes a copy of the module with a `signature` custom section first, which `wasmsign2 verify -i FILE -K PK` accepts (PK from --public-key-out or `signer export-wasmsig-key`). The copy carries no manifest: `signer verify` reports which trusted keys signed it, but the runtime runs signed bundles only.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A bundle directory (its module.wasm is signed, and only if it matches the manifest's hash) or a .wasm module (an existing `signature` section is replaced).
    input: PathBuf,
    /// The secret key file (from `signer keygen` or `minisign -G`).
    #[arg(long)]
    key: PathBuf,
    /// The signed module to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the public key as a wasmsign2 public key file (0x01 followed by the 32 key bytes), for `wasmsign2 verify -K`.
    #[arg(long)]
    public_key_out: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Write a minisign public key as a wasmsign2 public key file, for `wasmsign2 verify -K`.
///
/// The file is what `wasmsign2 keygen` writes for a public key: the byte 0x01 followed by the 32 Ed25519 key bytes.
#[derive(Debug, clap::Args)]
pub struct ExportKeyArgs {
    /// The minisign public key file.
    public_key: PathBuf,
    /// The wasmsign2 public key file to write.
    #[arg(long)]
    out: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Turn a wasmsign2 public key into a minisign .pub file for a trust store.
///
/// With the .pub in the trust store, `signer verify` accepts modules that `wasmsign2 sign` signed with that key. Its key id is the first 8 bytes of the key id wasmsign2 gives the key (HMAC-SHA256 keyed with the public key over the message "key_id"), so it is the first 16 hex digits of the key id `wasmsign2 -v show` prints.
#[derive(Debug, clap::Args)]
pub struct ImportKeyArgs {
    /// The wasmsign2 public key: raw (from `wasmsign2 keygen`), DER or PEM SubjectPublicKeyInfo, or an OpenSSH ssh-ed25519 line.
    key: PathBuf,
    /// The .pub file to write (for example TRUST/name.pub); an existing file is not overwritten.
    #[arg(long)]
    out: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct ExportJson {
    out: PathBuf,
    key_id: String,
    wasmsign2_key_id: String,
    /// SHA-256 the signature covers: the module's sections after the signature section.
    signed_sha256: String,
    /// SHA-256 of the module without the signature section.
    module_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key_out: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct KeyJson {
    out: PathBuf,
    key_id: String,
    wasmsign2_key_id: String,
}

/// The module to sign: a bundle's module.wasm, checked against its manifest, or a .wasm file as it is.
fn module_to_sign(input: &Path) -> anyhow::Result<Vec<u8>> {
    let limits = ReadLimits::default();
    if !input.is_dir() {
        return read_capped(input, limits.max_module_bytes).with_context(|| format!("reading {}", input.display()));
    }
    // As with `signer sign`: never a signature on a module the manifest does not name.
    Ok(crate::cmd::read_bundle_to_sign(input)?.0.module)
}

pub fn export(args: ExportArgs) -> anyhow::Result<Outcome> {
    let module = module_to_sign(&args.input)?;
    let key = load_secret_key(&args.key, PasswordSource::EnvironmentOrPrompt)?;
    let signed = signer::wasmsig::sign(&module, &key).with_context(|| format!("signing {}", args.input.display()))?;
    let parsed = SignedModule::parse(&signed).context("re-reading the signed module")?;
    let out = ExportJson {
        out: args.out.clone(),
        key_id: key.key_id().to_string(),
        wasmsign2_key_id: hex::encode(wasmsign2_key_id(key.public_key().verifying_key())),
        signed_sha256: hex::encode(parsed.module_hash()),
        module_sha256: hex::encode(Sha256::digest(parsed.unsigned_module())),
        public_key_out: args.public_key_out.clone(),
    };
    atomic_write(&args.out, &signed, FileMode::Public).with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(path) = &args.public_key_out {
        atomic_write(path, &wasmsign2_public_key(&key.public_key()), FileMode::Public)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        crate::cmd::print_json(&out)?;
    } else {
        println!(
            "wrote {} ({} bytes): signed by key {} (wasmsign2 key id {}) over sha256 {}",
            args.out.display(),
            signed.len(),
            out.key_id,
            out.wasmsign2_key_id,
            out.signed_sha256
        );
        if let Some(path) = &args.public_key_out {
            println!(
                "wrote {}; check with: wasmsign2 verify -i {} -K {}",
                path.display(),
                args.out.display(),
                path.display()
            );
        }
    }
    Ok(Outcome::Success)
}

pub fn export_key(args: ExportKeyArgs) -> anyhow::Result<Outcome> {
    let key = load_public_key(&args.public_key)?;
    atomic_write(&args.out, &wasmsign2_public_key(&key), FileMode::Public)
        .with_context(|| format!("writing {}", args.out.display()))?;
    print_key_result(args.out, &key, args.json)
}

pub fn import_key(args: ImportKeyArgs) -> anyhow::Result<Outcome> {
    let bytes =
        read_capped(&args.key, MAX_KEY_FILE_BYTES as u64).with_context(|| format!("reading {}", args.key.display()))?;
    let key = import_public_key(&bytes).with_context(|| format!("{}", args.key.display()))?;
    match atomic_write_new(&args.out, imported_key_file_text(&key).as_bytes(), FileMode::Public) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists already; refusing to overwrite a key", args.out.display())
        }
        other => other.with_context(|| format!("writing {}", args.out.display()))?,
    }
    print_key_result(args.out, &key, args.json)
}

fn print_key_result(out: PathBuf, key: &signer::minisign::PublicKey, json: bool) -> anyhow::Result<Outcome> {
    let result = KeyJson {
        out,
        key_id: key.key_id().to_string(),
        wasmsign2_key_id: hex::encode(wasmsign2_key_id(key.verifying_key())),
    };
    if json {
        crate::cmd::print_json(&result)?;
    } else {
        println!("key id           {}", result.key_id);
        println!("wasmsign2 key id {}", result.wasmsign2_key_id);
        println!("wrote            {}", result.out.display());
    }
    Ok(Outcome::Success)
}
