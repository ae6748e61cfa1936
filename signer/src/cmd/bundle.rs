//! `signer bundle`: wrap a module built by any toolchain into an unsigned bundle.

use anyhow::{Context, bail};
use std::path::PathBuf;

use signer::bundle::write_unsigned;
use signer::manifest::{
    Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance, format_rfc3339, parse_rfc3339,
};

use crate::Outcome;

/// Make an unsigned bundle (module.wasm + manifest.json) from a .wasm file, ready for `signer sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The compiled WebAssembly module.
    #[arg(long)]
    wasm: PathBuf,
    /// Tenant / module name ([a-z0-9_-]).
    #[arg(long)]
    name: String,
    /// Version number; must increase with every release (the guardian refuses downgrades).
    #[arg(long)]
    version: u64,
    /// Human-readable version label (default: the version number).
    #[arg(long)]
    version_label: Option<String>,
    /// Capabilities TOML (fuel, memory_mib, timeout_ms, max_output_bytes, env, [[preopen]], network). Default: conservative, no files, no network.
    #[arg(long)]
    caps: Option<PathBuf>,
    /// Expiry as an RFC 3339 time (default: 90 days from now).
    #[arg(long, conflicts_with = "valid_days")]
    expires: Option<String>,
    /// Days the approval stays valid (default 90).
    #[arg(long)]
    valid_days: Option<u32>,
    /// Directory to create the bundle in; must not exist.
    #[arg(long)]
    out: PathBuf,
    /// Print the manifest as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // Capped and regular files only, like every read: a FIFO or a device
    // named here must not hang or flood the signer.
    let limits = signer::bundle::ReadLimits::default();
    let module = signer::fsutil::read_capped(&args.wasm, limits.max_module_bytes)
        .with_context(|| format!("reading {}", args.wasm.display()))?;
    if !module.starts_with(b"\0asm") {
        bail!(
            "{} is not a WebAssembly binary (no \\0asm magic); compile .wat files to .wasm first",
            args.wasm.display()
        );
    }
    let capabilities = match &args.caps {
        Some(path) => {
            let bytes = signer::fsutil::read_capped(path, 1024 * 1024)
                .with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
            Capabilities::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Capabilities::default(),
    };
    let expires = match (&args.expires, args.valid_days) {
        (Some(text), _) => format_rfc3339(parse_rfc3339(text, "--expires")?),
        (None, days) => {
            format_rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days.unwrap_or(90))))
        }
    };
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.to_string(),
        name: args.name,
        version: args.version,
        version_label: args.version_label.unwrap_or_else(|| args.version.to_string()),
        module: ModuleDigest::of(&module),
        expires,
        provenance: Provenance::default(),
        capabilities,
    };
    manifest.validate()?;
    write_unsigned(&args.out, &module, &manifest)?;
    if args.json {
        println!("{}", String::from_utf8(manifest.to_canonical_bytes()?)?);
    } else {
        println!(
            "wrote unsigned bundle {} ({} v{}, sha256 {})",
            args.out.display(),
            manifest.name,
            manifest.version,
            manifest.module.sha256
        );
    }
    Ok(Outcome::Success)
}
