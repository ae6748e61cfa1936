//! `cargo xtask keygen`: a thin wrapper over the signer library, for convenience.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

use signer::keyfile::{NewKeyProtection, generate_key_pair};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the key files (NAME.key and NAME.pub).
    #[arg(long)]
    pub name: String,
    /// Directory for the key files [default: keys/ of this checkout, which git ignores].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Store the secret key without a password. Only for throwaway keys.
    #[arg(long = "danger-unencrypted-for-tests")]
    pub unencrypted: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    signer::manifest::validate_name(&args.name).context("invalid --name")?;
    let out = args.out.unwrap_or_else(|| xtask::workspace_root().join("keys"));
    let protection = if args.unencrypted {
        NewKeyProtection::DangerUnencrypted
    } else {
        NewKeyProtection::PasswordFromEnvironmentOrPrompt
    };
    let (key, paths) = generate_key_pair(&out, &args.name, protection)?;
    super::print_stdout(&format!(
        "key id      {}\nsecret key  {}\npublic key  {}\n",
        key.key_id(),
        paths.secret.display(),
        paths.public.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
