//! `cargo xtask sign`: build, bundle into `dist/<module>/<version>/`, write
//! the build provenance statement beside it (`<version>.intoto.json`), sign
//! both, and record `module.signed` in the audit log. `--request-only` stops
//! before signing (the bundle and its statement go to the offline machine,
//! where `signer sign` signs both with the same key); `--attach` checks the
//! signatures that came back, the statement's too.

use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;

use signer::keyfile::{PasswordSource, load_secret_key};
use signer::trust::TrustStore;
use xtask::build::{BuildOptions, build_modules};
use xtask::progress::Progress;
use xtask::provenance::{StatementRequirement, StatementStatus, check_statement};
use xtask::sign::{SignedBundle, bundle_and_sign, check_attached};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Modules to sign, by package name [default: all].
    pub modules: Vec<String>,
    /// Secret key to sign with (password from NIGHTCORE_KEY_PASSWORD or a prompt); it signs both the
    /// manifest and the build provenance statement beside the bundle (<dist>/<module>/<version>.intoto.json).
    #[arg(long, required_unless_present_any = ["request_only", "attach"])]
    pub key: Option<PathBuf>,
    /// Build and write the unsigned bundles and statements only, for the offline `signer sign` step.
    #[arg(long, conflicts_with_all = ["key", "attach"])]
    pub request_only: bool,
    /// Do not build or sign: verify the bundles in dist/ against --trust, after
    /// signatures were brought back from the offline machine.
    #[arg(long, requires = "trust")]
    pub attach: bool,
    /// Trust store to check attached signatures against.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Where bundles go [default: dist/ of this checkout].
    #[arg(long)]
    pub dist: Option<PathBuf>,
    /// Audit log to record events in [default: none unless set].
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Days the approval stays valid.
    #[arg(long, default_value_t = 90)]
    pub valid_days: u32,
    /// Build timestamp (seconds since the epoch); default: the last commit's time.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<u64>,
    /// Print one JSON object: {"bundles": [{module, version, bundle_dir, module_sha256, manifest_sha256, signed_by, created, statement}]}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let dist = args.dist.clone().unwrap_or_else(|| root.join(xtask::verify::DIST_DIR));
    let progress = Progress::for_stderr();
    if args.attach {
        return attach(&args, &dist);
    }
    let key = match &args.key {
        Some(path) => Some(load_secret_key(path, PasswordSource::EnvironmentOrPrompt)?),
        None => None,
    };
    let mut options = BuildOptions::for_workspace(&root, progress);
    options.source_date_epoch = args.source_date_epoch;
    let built = build_modules(&options, &args.modules)?;
    let mut bundles: Vec<SignedBundle> = Vec::new();
    let audit_log = args.audit.as_deref().map(xtask::events::host_log).transpose()?;
    for module in &built {
        let signed = bundle_and_sign(module, &dist, args.valid_days, key.as_ref())?;
        if let Some(log) = &audit_log {
            xtask::events::module_signed(log, &signed)?;
        }
        bundles.push(signed);
    }
    if args.json {
        super::print_stdout(&(serde_json::to_string(&serde_json::json!({ "bundles": bundles }))? + "\n"))?;
    } else {
        let mut text = String::new();
        for b in &bundles {
            let how = match b.signed_by {
                Some(id) => format!("signed by {id}"),
                None => "unsigned: carry it to the offline machine and run `signer sign --key KEY <dir>`".to_string(),
            };
            text += &format!(
                "{} v{}  {}  sha256 {}  {how}\n",
                b.module,
                b.version,
                b.bundle_dir.display(),
                b.module_sha256
            );
            match &b.statement {
                Some(path) => text += &format!("  build provenance statement {}\n", path.display()),
                None => text += "  no build provenance statement (the bundle predates them)\n",
            }
        }
        super::print_stdout(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn attach(args: &Args, dist: &std::path::Path) -> Result<ExitCode> {
    let Some(trust_dir) = &args.trust else { bail!("--attach needs --trust") };
    let trust = TrustStore::load(trust_dir)?;
    let root = xtask::workspace_root();
    let (_, modules) = xtask::build::discover_workspace_modules(&root.join("modules"), Progress::for_stderr())?;
    let modules = xtask::build::select_modules(modules, &args.modules)?;
    let mut failed = false;
    let mut text = String::new();
    for module in modules {
        let dir = xtask::verify::bundle_dir(dist, &module.name, module.metadata.version);
        match check_attached(&dir, &trust) {
            Ok(v) => {
                let signers: Vec<String> = v.signers().iter().map(ToString::to_string).collect();
                text += &format!(
                    "{} v{}  verified, signed by {}\n",
                    module.name,
                    module.metadata.version,
                    signers.join(", ")
                );
                let statement = check_statement(&dir, v.manifest(), Some(&trust))?;
                failed |= statement.failure(StatementRequirement::Optional).is_some();
                text += &match statement.status {
                    StatementStatus::Unsigned => format!(
                        "  build provenance: {} is unsigned (it must travel with the bundle: `signer sign` \
                         signs it beside the bundle, or run `cargo xtask sign --key KEY {}`)\n",
                        statement.path.display(),
                        module.name
                    ),
                    _ => xtask::provenance::render_human(&statement),
                };
            }
            Err(e) => {
                failed = true;
                text += &format!("{} v{}  NOT verified: {e:#}\n", module.name, module.metadata.version);
            }
        }
    }
    super::print_stdout(&text)?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
