//! `cargo xtask verify-reproducible [MODULE…]`: rebuilds each signed module
//! from source at another path and checks the bytes are the signed ones, and
//! checks the build provenance statement beside each bundle, naming every
//! input it records that the rebuild did not use.
//!
//! Exit status: 0 when every module rebuilt identically, 1 when any differs
//! (or its bundle or statement does not verify), 2 on an error (missing
//! bundle, bad manifest, failed build).

use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::build::{discover_workspace_modules, select_modules};
use xtask::progress::Progress;
use xtask::provenance::{StatementReport, StatementRequirement};
use xtask::rebuild::{RebuildReport, render_human};
use xtask::verify::{DIST_DIR, UnverifiedBundle, UnverifiedStatement, VerifyOptions, verify_module};

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status: 0 = every module rebuilt to identical bytes, 1 = at least one did not, \
                        2 = an error (missing bundle, bad manifest, failed build); a bundle whose signatures do not verify \
                        against --trust counts as 1, and so does a build provenance statement (<bundle>.intoto.json) \
                        that is malformed, about other bytes, at odds with the manifest or, with --trust, not signed by \
                        enough trusted keys. A missing or unsigned statement is reported but only fails with \
                        --require-statement.")]
pub struct Args {
    /// Modules to verify, by package name; all modules when none is named.
    /// The version checked is the one the module's Cargo.toml declares.
    pub modules: Vec<String>,

    /// Directory of signed bundles, laid out as <DIST>/<module>/<version>/
    /// [default: dist/ of this checkout].
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,

    /// The modules workspace to rebuild from [default: modules/ of this checkout].
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,

    /// Trust store to check each bundle's signatures against first; a bundle
    /// that does not verify counts as a definite "no" (exit 1).
    #[arg(long, value_name = "DIR")]
    pub trust: Option<PathBuf>,

    /// Audit log to record a `module.rebuilt` event per module in.
    #[arg(long, value_name = "PATH")]
    pub audit: Option<PathBuf>,

    /// Fail (exit 1) when a bundle has no build provenance statement beside it,
    /// or only an unsigned one.
    #[arg(long)]
    pub require_statement: bool,

    /// Print one JSON document: {"all_identical": bool, "modules": [{"module",
    /// "version", "status": "identical"|"different"|"unverified"|"error", "error"?,
    /// "bundle"?, "report"?, "statement"?}]}, where "report" is
    /// xtask::rebuild::RebuildReport and "statement" is
    /// xtask::provenance::StatementReport ({"path", "status", "reason"?, "error"?,
    /// "signers", "signature_count", "differences": [{"field", "recorded",
    /// "rebuilt"}]}).
    #[arg(long)]
    pub json: bool,
}

/// How one module fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Different,
    Error,
    Identical,
    /// The bundle's signatures did not verify against --trust.
    Unverified,
}

/// One module in the `--json` output.
#[derive(Serialize)]
struct JsonModule {
    module: String,
    version: u64,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<RebuildReport>,
    /// The build provenance statement, whenever it was looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    statement: Option<StatementReport>,
}

/// The `--json` output.
#[derive(Serialize)]
struct JsonOutput {
    all_identical: bool,
    modules: Vec<JsonModule>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let progress = Progress::for_stderr();
    let options = VerifyOptions {
        modules_dir: args.modules_dir.unwrap_or_else(|| root.join("modules")),
        dist_dir: args.dist.unwrap_or_else(|| root.join(DIST_DIR)),
        scratch_parent: None,
        cargo_home: None,
        trust: args.trust.as_deref().map(signer::trust::TrustStore::load).transpose()?,
        audit_log: args.audit.as_deref().map(xtask::events::host_log).transpose()?,
        statement: if args.require_statement { StatementRequirement::Required } else { StatementRequirement::Optional },
        progress,
    };
    let (toolchain, modules) = discover_workspace_modules(&options.modules_dir, progress)?;
    let modules = select_modules(modules, &args.modules)?;

    let mut results = Vec::new();
    for module in &modules {
        progress.step(format_args!("verifying {} version {}", module.name, module.metadata.version));
        let result = match verify_module(&options, &toolchain, module) {
            Ok(verification) => JsonModule {
                module: verification.module,
                version: verification.version,
                status: if verification.report.identical { Status::Identical } else { Status::Different },
                error: None,
                bundle: Some(verification.bundle_dir),
                report: Some(verification.report),
                statement: Some(verification.statement),
            },
            Err(e) => {
                let statement = e.downcast_ref::<UnverifiedStatement>().map(|u| u.0.clone());
                let unverified = e.is::<UnverifiedBundle>() || statement.is_some();
                JsonModule {
                    module: module.name.clone(),
                    version: module.metadata.version,
                    status: if unverified { Status::Unverified } else { Status::Error },
                    error: Some(format!("{e:#}")),
                    bundle: None,
                    report: None,
                    statement,
                }
            }
        };
        if !args.json {
            print_human(&result)?;
        }
        results.push(result);
    }

    let code = exit_code(results.iter().map(|r| r.status));
    if args.json {
        let output = JsonOutput { all_identical: code == 0, modules: results };
        super::print_stdout(&(serde_json::to_string_pretty(&output)? + "\n"))?;
    }
    Ok(ExitCode::from(code))
}

fn print_human(result: &JsonModule) -> Result<()> {
    let title = format!("{} version {}", result.module, result.version);
    match (&result.report, &result.error) {
        (Some(report), _) => {
            let mut text = render_human(&title, report);
            if let Some(statement) = &result.statement {
                text += &xtask::provenance::render_human(statement);
            }
            super::print_stdout(&text)?;
        }
        (None, Some(error)) => eprintln!("error: {title}: {error}"),
        (None, None) => {}
    }
    Ok(())
}

/// 2 if any module hit an error, else 1 if any differs, else 0.
fn exit_code(statuses: impl Iterator<Item = Status>) -> u8 {
    statuses
        .map(|status| match status {
            Status::Identical => 0,
            Status::Different | Status::Unverified => 1,
            Status::Error => 2,
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_outrank_differences_which_outrank_success() {
        assert_eq!(exit_code([].into_iter()), 0);
        assert_eq!(exit_code([Status::Identical, Status::Identical].into_iter()), 0);
        assert_eq!(exit_code([Status::Identical, Status::Different].into_iter()), 1);
        assert_eq!(exit_code([Status::Error, Status::Different].into_iter()), 2);
    }
}
