//! `signer inspect`: show what a bundle claims, without deciding whether to trust it.

use signer::text::escape;
use std::path::PathBuf;

use signer::bundle::{BundleBytes, ReadLimits};
use signer::manifest::{Manifest, ModuleDigest};
use signer::minisign::{Signature, SignatureAlgorithm};

use crate::Outcome;

/// Show a bundle's manifest, module digest and signatures. Trusts nothing: use `signer verify` to decide.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle directory, or a single-file module made by `signer embed`.
    bundle: PathBuf,
    /// Print one JSON object: {"manifest": …, "module": {"sha256", "size", "matches_manifest"}, "signatures": [{"file", "key_id", "algorithm", "trusted_comment"} | {"file", "error"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct InspectJson {
    manifest: Manifest,
    module: ModuleJson,
    signatures: Vec<SignatureJson>,
}

#[derive(serde::Serialize)]
struct ModuleJson {
    sha256: String,
    size: u64,
    matches_manifest: bool,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum SignatureJson {
    Parsed { file: String, key_id: String, algorithm: &'static str, trusted_comment: String },
    Malformed { file: String, error: String },
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let bundle = BundleBytes::read_any(&args.bundle, &ReadLimits::default())?;
    let manifest = Manifest::from_bytes(&bundle.manifest)?;
    let digest = ModuleDigest::of(&bundle.module);
    let signatures = bundle
        .signatures
        .iter()
        .map(|file| match Signature::from_file_bytes(&file.bytes) {
            Ok(sig) => SignatureJson::Parsed {
                file: file.file_name.clone(),
                key_id: sig.key_id.to_string(),
                algorithm: match sig.algorithm {
                    SignatureAlgorithm::Prehashed => "prehashed",
                    SignatureAlgorithm::Legacy => "legacy",
                },
                trusted_comment: sig.trusted_comment,
            },
            Err(e) => SignatureJson::Malformed { file: file.file_name.clone(), error: e.to_string() },
        })
        .collect();
    let out = InspectJson {
        module: ModuleJson { matches_manifest: digest == manifest.module, sha256: digest.sha256, size: digest.size },
        manifest,
        signatures,
    };
    if args.json {
        crate::cmd::print_json(&out)?;
        return Ok(Outcome::Success);
    }
    // Everything below comes from whoever made the bundle: escaped, so that
    // no field can repaint the terminal.
    let m = &out.manifest;
    println!("name           {}", escape(&m.name));
    println!("version        {} ({})", m.version, escape(&m.version_label));
    println!("expires        {}", escape(&m.expires));
    println!("module sha256  {} ({} bytes)", m.module.sha256, m.module.size);
    println!(
        "module.wasm    {}",
        if out.module.matches_manifest { "matches the manifest" } else { "DOES NOT match the manifest" }
    );
    let c = &m.capabilities;
    println!(
        "capabilities   fuel {}, memory {} MiB, timeout {} ms, output {} bytes",
        c.fuel, c.memory_mib, c.timeout_ms, c.max_output_bytes
    );
    for p in &c.preopen {
        println!("  preopen      {} ({:?})", escape(&p.guest), p.mode);
    }
    println!("  env          {}", if c.env.is_empty() { "none".to_string() } else { escape(&c.env.join(", ")).into() });
    println!(
        "  network      {}",
        if c.network.is_empty() { "denied".to_string() } else { escape(&c.network.join(", ")).into() }
    );
    if !m.provenance.toolchain.is_empty() {
        println!("built with     {} (source date {})", escape(&m.provenance.toolchain), m.provenance.source_date_epoch);
    }
    println!("signatures     {}", out.signatures.len());
    for s in &out.signatures {
        match s {
            SignatureJson::Parsed { file, key_id, trusted_comment, .. } => {
                println!("  {key_id}  {}  [{}]", escape(file), escape(trusted_comment))
            }
            SignatureJson::Malformed { file, error } => {
                println!("  MALFORMED {}: {}", escape(file), escape(&error.to_string()))
            }
        }
    }
    Ok(Outcome::Success)
}
