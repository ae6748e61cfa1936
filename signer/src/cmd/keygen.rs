//! `signer keygen`: make a minisign key pair for a maintainer or a host.

use anyhow::Context;
use std::path::PathBuf;

use signer::keyfile::{NewKeyProtection, generate_key_pair};

use crate::Outcome;

/// Generate a key pair: NAME.key (secret, mode 0600, encrypted with scrypt like minisign) and NAME.pub.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the key files (NAME.key and NAME.pub).
    #[arg(long)]
    name: String,
    /// Directory to write the key files into; created if missing.
    #[arg(long)]
    out: PathBuf,
    /// Store the secret key without a password. Only for throwaway keys in tests and demos.
    #[arg(long = "danger-unencrypted-for-tests")]
    unencrypted: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct KeygenJson {
    key_id: String,
    secret_key: PathBuf,
    public_key: PathBuf,
    encrypted: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    signer::manifest::validate_name(&args.name).context("invalid --name")?;
    let protection = if args.unencrypted {
        NewKeyProtection::DangerUnencrypted
    } else {
        NewKeyProtection::PasswordFromEnvironmentOrPrompt
    };
    let (key, paths) = generate_key_pair(&args.out, &args.name, protection)?;
    if args.json {
        crate::cmd::print_json(&KeygenJson {
            key_id: key.key_id().to_string(),
            secret_key: paths.secret,
            public_key: paths.public,
            encrypted: !args.unencrypted,
        })?;
    } else {
        println!("key id      {}", key.key_id());
        println!("secret key  {}", paths.secret.display());
        println!("public key  {}", paths.public.display());
    }
    Ok(Outcome::Success)
}
