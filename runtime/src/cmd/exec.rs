//! `runtime exec BUNDLE [-- ARGS…]` and `runtime exec --all DEPLOY_DIR`.
//!
//! # Exit codes
//!
//! For one bundle:
//! - the guest's own exit status when it exits (`proc_exit(n)` gives `n`;
//!   returning from `_start` gives 0). wasmtime-wasi only accepts statuses
//!   0–125: `proc_exit` with any other value is a trap (134);
//! - **124** when a limit stopped the guest: fuel, timeout, memory, table or
//!   output (output past the cap stops the guest rather than being silently
//!   dropped, so a run whose output is incomplete never looks successful);
//! - **125** when the bundle was refused before running: verification,
//!   policy, validation, compilation or linking;
//! - **134** when the guest trapped (including stack overflow);
//! - **2** for a usage or I/O error (unreadable bundle, config, trust store,
//!   audit log, or host directory).
//!
//! A guest may itself exit with 2, 124 or 125; `--json` says which it was.
//!
//! With `--all`: **0** when every tenant ran and exited 0, **1** when any
//! tenant was refused, stopped, trapped or exited non-zero, **2** for a usage
//! or I/O error of the deploy directory, config, trust store or audit log.
//!
//! `--receipt FILE` writes a receipt signed by the log key (the host key, or
//! `[runtime] log_key` from the config; see
//! `runtime::receipt`) when the guest ran; `--deterministic` fixes the
//! guest's clocks and randomness so that `runtime replay` can reproduce it.

use anyhow::{Context, bail};
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use audit::AuditLog;
use runtime::deploy::prepare_all;
use runtime::events::{VerificationMode, before_run_events, finished_event, refused_event, tenant_failure_event};
use runtime::receipt::Receipt;
use runtime::{
    Allocation, Determinism, EngineOptions, ExecOptions, ExecReport, NightEngine, Outcome, PoolingOptions, Refusal,
    TenantFailure, Verification, prepare_bundle, run_ready, wasi_linker,
};
use signer::fsutil::{FileMode, write_output};
use signer::keyfile::load_or_create_host_key;
use signer::manifest::MAX_MEMORY_MIB;
use signer::minisign::SecretKey;
use signer::text::escape;

use super::report;

pub const EXIT_DEPLOY_FAILURES: u8 = 1;
pub const EXIT_USAGE_OR_IO: u8 = 2;
pub const EXIT_STOPPED_BY_LIMIT: u8 = 124;
pub const EXIT_REFUSED: u8 = 125;
pub const EXIT_TRAPPED: u8 = 134;

pub const EXIT_CODES_HELP: &str = "Exit status of `exec BUNDLE`: the guest's own exit status when it exits \
(0-125; 0 when _start returns); 124 when a limit stopped it (fuel, timeout, memory, table, output); \
125 when the bundle was refused before running (verification, policy, validation); 134 when the guest \
trapped; 2 for a usage or I/O error. With --all: 0 when every tenant exited 0, 1 when any did not, 2 for \
a usage or I/O error.";

/// Arguments of `runtime exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle to run: a bundle directory or a single-file module (`signer embed`); with --all, the deploy directory holding one bundle directory per tenant.
    bundle: PathBuf,

    /// Arguments for the guest, after `--`; the guest sees its tenant name as argv[0].
    #[arg(last = true)]
    guest_args: Vec<String>,

    /// Runs every bundle under the deploy directory concurrently and prints one report.
    #[arg(long)]
    all: bool,

    /// With --all: how many tenants run at once (default: the number of CPUs).
    #[arg(long, requires = "all")]
    parallel: Option<NonZeroUsize>,

    /// Prints one JSON object on stdout instead of the guest's output and a summary.
    #[arg(long)]
    json: bool,

    /// Appends run.finished / run.refused events to this audit log (default, when a config file is used: audit_log from its [runtime] table, else the node's audit_log).
    #[arg(long, value_name = "PATH")]
    audit: Option<PathBuf>,

    #[command(flatten)]
    host: super::host::HostArgs,

    /// Writes a receipt of the run (when the guest ran), signed with the log key, to this file.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    receipt: Option<PathBuf>,

    /// Gives the guest a fixed clock and a fixed random stream so that the run can be replayed (`runtime replay`).
    #[arg(long)]
    deterministic: bool,

    /// The key that signs receipts and audit checkpoints (default: log_key from the config's [runtime] table, else its host_key, which is in the state directory; created if missing).
    #[arg(long, value_name = "PATH", requires = "receipt")]
    host_key: Option<PathBuf>,

    /// Runs the bundle without verifying its signatures. For development only; recorded in the report and the audit log.
    #[arg(long)]
    danger_allow_unsigned: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let host = args.host.load()?;
    let trust = if args.danger_allow_unsigned { None } else { Some(args.host.trust_store(&host.config)?) };
    let (verification, mode) = match &trust {
        Some(trust) => (Verification::Required(trust), VerificationMode::Required),
        None => (Verification::DangerAllowUnsigned, VerificationMode::DangerAllowUnsigned),
    };
    let config = &host.config;
    // The node's log, host key and origin, or the runtime's own ([runtime]
    // in the config): never a key found beside the log, which is shipped off
    // the node and may be written by others.
    let run_log = &config.runtime;
    let log_key_path = args.host_key.clone().unwrap_or_else(|| run_log.log_key.clone());

    // The log is opened before anything runs, so that no run goes unrecorded
    // because the log turned out to be unwritable afterwards.
    let audit_path = args.audit.clone().or_else(|| host.config_file_used.then(|| run_log.audit_log.clone()));
    let mut audit_log = match &audit_path {
        Some(path) => {
            // Every append refreshes the checkpoint signed by the log key, so
            // a truncated log is always detectable.
            let host_log =
                audit::HostLog { log: path.clone(), host_key: log_key_path.clone(), origin: run_log.origin.clone() };
            Some(host_log.open().with_context(|| format!("cannot open the audit log {}", path.display()))?)
        }
        None => None,
    };

    // The host key is loaded before running too: a receipt that cannot be
    // signed is better found out before the guest has had its effects.
    let receipt_key = match &args.receipt {
        Some(_) => Some(
            load_or_create_host_key(&log_key_path)
                .with_context(|| format!("cannot load the log key {}", log_key_path.display()))?,
        ),
        None => None,
    };

    let mut options = ExecOptions::new(verification, &host.policies);
    options.cache = host.cache.as_ref();
    let floors = args.host.rollback_floors(config, trust.as_ref())?;
    options.floors = floors.as_ref();
    if args.deterministic {
        options.determinism = Determinism::Fixed;
    }

    if args.all {
        let parallel = args.parallel.or_else(|| std::thread::available_parallelism().ok()).map_or(1, NonZeroUsize::get);
        run_deploy(&args, &options, parallel, audit_log.as_mut(), mode)
    } else {
        let receipt_key = receipt_key.as_ref().map(|key| (key, run_log.origin.as_str()));
        let code = run_one(&args, &options, audit_log.as_mut(), mode, receipt_key)?;
        Ok(code)
    }
}

/// Appends what must be on record before a guest runs; an error here means
/// the guest must not run.
fn record_before_run(audit_log: Option<&mut AuditLog>, events: &[audit::Event]) -> anyhow::Result<()> {
    if let Some(log) = audit_log {
        log.append_batch(events).context("refusing to run unrecorded: cannot append run.started to the audit log")?;
    }
    Ok(())
}

fn run_one(
    args: &Args,
    options: &ExecOptions<'_>,
    mut audit_log: Option<&mut AuditLog>,
    mode: VerificationMode,
    receipt_key: Option<(&SecretKey, &str)>,
) -> anyhow::Result<ExitCode> {
    let engine = NightEngine::new(EngineOptions::default()).context("cannot start the wasm engine")?;
    let linker = wasi_linker(&engine).context("cannot set up WASI")?;
    let result = match prepare_bundle(&engine, &linker, &args.bundle, options) {
        Ok(ready) => {
            record_before_run(audit_log.as_deref_mut(), &before_run_events(&args.bundle, &ready))?;
            run_ready(&engine, &ready, &args.guest_args, options.determinism)
        }
        Err(refusal) => Err(refusal),
    };

    let audit_result = audit_log.map(|log| {
        let event = match &result {
            Ok(report) => finished_event(&args.bundle, report),
            Err(refusal) => refused_event(&args.bundle, refusal, mode),
        };
        log.append(&event)
    });

    let code = match &result {
        Ok(report) => exit_code_of(&report.run.outcome),
        Err(refusal) => refusal_exit_code(refusal),
    };
    if args.json {
        let json = match &result {
            Ok(report) => report::ran(&args.bundle, report, code),
            Err(refusal) => report::refused(&args.bundle, refusal, code),
        };
        print_json(&json)?;
    } else {
        match &result {
            Ok(report) => print_run(report)?,
            Err(refusal) => eprintln!(
                "runtime: refused ({}/{}): {}",
                refusal.stage(),
                refusal.reason_code(),
                escape(&refusal.to_string())
            ),
        }
    }
    if let Some(Err(e)) = audit_result {
        bail!("the run's end is not recorded: cannot append to the audit log: {e}");
    }
    if let (Some(path), Some((key, origin)), Ok(report)) = (&args.receipt, receipt_key, &result) {
        let signed =
            Receipt::of(report, origin).and_then(|receipt| receipt.sign(key)).context("cannot make the receipt")?;
        write_output(path, &signed.to_bytes()?, FileMode::Public)
            .with_context(|| format!("cannot write the receipt {}", path.display()))?;
    }
    Ok(ExitCode::from(code))
}

fn run_deploy(
    args: &Args,
    options: &ExecOptions<'_>,
    parallel: usize,
    mut audit_log: Option<&mut AuditLog>,
    mode: VerificationMode,
) -> anyhow::Result<ExitCode> {
    let pooling = PoolingOptions {
        concurrent_instances: u32::try_from(parallel).unwrap_or(u32::MAX),
        max_memory_mib: MAX_MEMORY_MIB,
        max_table_elements: runtime::limits::DEFAULT_MAX_TABLE_ELEMENTS,
    };
    let engine =
        NightEngine::new(EngineOptions { allocation: Allocation::Pooling(pooling), ..EngineOptions::default() })
            .context("cannot start the wasm engine")?;
    let linker = wasi_linker(&engine).context("cannot set up WASI")?;
    let prepared = prepare_all(&engine, &linker, &args.bundle, options, parallel)?;
    let before: Vec<audit::Event> =
        prepared.ready().flat_map(|(bundle, ready)| before_run_events(bundle, ready)).collect();
    if !before.is_empty() {
        record_before_run(audit_log.as_deref_mut(), &before)?;
    }
    let deploy = prepared.run(&engine, &args.guest_args, options, parallel);

    let mut audit_error = None;
    let mut summary = report::SummaryJson { total: deploy.tenants.len(), ..report::SummaryJson::default() };
    let mut tenants = Vec::with_capacity(deploy.tenants.len());
    for tenant in &deploy.tenants {
        let (json, event) = match &tenant.result {
            Ok(run) => {
                match run.run.outcome {
                    Outcome::Exited { code: 0 } => summary.exited_zero += 1,
                    Outcome::Exited { .. } => summary.exited_nonzero += 1,
                    ref outcome if outcome.is_limit() => summary.stopped_by_limit += 1,
                    _ => summary.trapped += 1,
                }
                (report::ran(&tenant.bundle, run, exit_code_of(&run.run.outcome)), finished_event(&tenant.bundle, run))
            }
            Err(TenantFailure::Refused(refusal)) => {
                summary.refused += 1;
                (
                    report::refused(&tenant.bundle, refusal, refusal_exit_code(refusal)),
                    refused_event(&tenant.bundle, refusal, mode),
                )
            }
            Err(failure) => {
                summary.refused += 1;
                (
                    report::host_failure(&tenant.bundle, failure, EXIT_USAGE_OR_IO),
                    tenant_failure_event(&tenant.bundle, failure),
                )
            }
        };
        if let Some(log) = audit_log.as_deref_mut()
            && let Err(e) = log.append(&event)
        {
            audit_error.get_or_insert(e);
        }
        tenants.push(json);
    }
    let all_ok = summary.exited_zero == summary.total;
    let code = if all_ok { 0 } else { EXIT_DEPLOY_FAILURES };
    if args.json {
        print_json(&report::DeployJson {
            deploy_dir: args.bundle.display().to_string(),
            exit_code: code,
            summary,
            tenants,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        for (tenant, json) in deploy.tenants.iter().zip(&tenants) {
            let line = match &tenant.result {
                Ok(run) => run.run.outcome.to_string(),
                Err(failure) => format!("refused: {failure}"),
            };
            writeln!(out, "{}: {} (exit {})", escape(&tenant.directory), escape(&line), json.exit_code)?;
        }
        writeln!(
            out,
            "{} tenants: {} exited 0, {} exited non-zero, {} stopped by a limit, {} trapped, {} refused",
            summary.total,
            summary.exited_zero,
            summary.exited_nonzero,
            summary.stopped_by_limit,
            summary.trapped,
            summary.refused
        )?;
    }
    if let Some(e) = audit_error {
        bail!("some runs are not recorded: cannot append to the audit log: {e}");
    }
    Ok(ExitCode::from(code))
}

/// The exit status a run maps to; see the module documentation.
pub fn exit_code_of(outcome: &Outcome) -> u8 {
    match outcome {
        // wasmtime-wasi only lets statuses 0..126 through; the mask keeps any
        // other value within what a process can report, as on a native host.
        Outcome::Exited { code } => (*code & 0xff) as u8,
        outcome if outcome.is_limit() => EXIT_STOPPED_BY_LIMIT,
        _ => EXIT_TRAPPED,
    }
}

pub fn refusal_exit_code(refusal: &Refusal) -> u8 {
    if refusal.is_host_io() { EXIT_USAGE_OR_IO } else { EXIT_REFUSED }
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).context("cannot write the JSON report")?;
    writeln!(out)?;
    Ok(())
}

fn print_run(report: &ExecReport) -> anyhow::Result<()> {
    let run = &report.run;
    std::io::stdout().lock().write_all(&run.stdout).context("cannot write the guest's stdout")?;
    let mut err = std::io::stderr().lock();
    err.write_all(&run.stderr)?;
    let fuel = match run.fuel.consumed {
        Some(consumed) => format!("{consumed}/{}", run.fuel.limit),
        None => format!("unknown/{}", run.fuel.limit),
    };
    let unverified = match report.facts.verification {
        runtime::VerificationStatus::Verified { .. } => "",
        _ => ", UNVERIFIED (--danger-allow-unsigned)",
    };
    writeln!(
        err,
        "runtime: {} v{} {} (fuel {fuel}, {:.1} ms, cache {}{unverified})",
        escape(&report.facts.tenant),
        report.facts.version,
        run.outcome,
        run.wall_time.as_secs_f64() * 1000.0,
        report.cache.kind()
    )?;
    if run.stdout_truncated || run.stderr_truncated {
        writeln!(err, "runtime: output truncated at {} bytes per stream", report.policy.max_output_bytes)?;
    }
    Ok(())
}
