//! `signer embed` and `signer extract`: between a bundle directory and a
//! single-file module that carries its signed manifest in a custom section.

use anyhow::Context;
use std::path::PathBuf;

use signer::bundle::{BundleBytes, ReadLimits, write_bundle};
use signer::fsutil::{FileMode, atomic_write};

use crate::Outcome;

/// Write a single .wasm file carrying the bundle's manifest and signatures in a custom section (the signed module hash is over the bytes before it).
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// The bundle directory.
    bundle: PathBuf,
    /// The single-file module to write.
    #[arg(long)]
    out: PathBuf,
}

/// Turn a single-file module back into a bundle directory (which must not exist).
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// The single-file module.
    file: PathBuf,
    /// The bundle directory to create.
    #[arg(long)]
    out: PathBuf,
}

pub fn embed(args: EmbedArgs) -> anyhow::Result<Outcome> {
    let bundle = BundleBytes::read(&args.bundle, &ReadLimits::default())?;
    let file = signer::embed::embed(&bundle)?;
    atomic_write(&args.out, &file, FileMode::Public).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} ({} bytes, {} signature(s))", args.out.display(), file.len(), bundle.signatures.len());
    Ok(Outcome::Success)
}

pub fn extract(args: ExtractArgs) -> anyhow::Result<Outcome> {
    let bundle = BundleBytes::read_any(&args.file, &ReadLimits::default())?;
    write_bundle(&args.out, &bundle)?;
    println!("wrote bundle {}", args.out.display());
    Ok(Outcome::Success)
}
