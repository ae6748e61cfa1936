//! The audit events a run leaves behind: `run.finished` when a guest ran (however
//! it ended) and `run.refused` when a bundle was not run.
//!
//! This is the runtime's single integration point with the audit log: the
//! binary opens the log before doing anything (no run goes unrecorded because
//! the log was unwritable) and appends what these functions build.

use std::path::Path;

use audit::{Actor, Event, kinds};
use serde_json::{Map, Value, json};

use crate::exec::Outcome;
use crate::pipeline::{ExecReport, Refusal, VerificationStatus};

/// Event kind of a refused run.
pub const RUN_REFUSED: &str = kinds::RUN_REFUSED;

/// Whether verification was requested, for refusal events (a refusal may come
/// before anything about the bundle is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationMode {
    Required,
    DangerAllowUnsigned,
}

fn actor() -> Actor {
    Actor::on_this_host("runtime")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `run.finished` for a bundle that ran.
pub fn finished_event(bundle: &Path, report: &ExecReport) -> Event {
    let (verification, signers) = match &report.facts.verification {
        VerificationStatus::Verified { signers } => ("verified", signers.clone()),
        VerificationStatus::DangerUnverified => ("danger_unverified", Vec::new()),
    };
    let run = &report.run;
    let exit_code = match run.outcome {
        Outcome::Exited { code } => Some(code),
        _ => None,
    };
    let data = json!({
        "bundle": bundle.display().to_string(),
        "tenant": report.facts.tenant,
        "version": report.facts.version,
        "module_sha256": report.facts.module_sha256,
        "manifest_sha256": report.facts.manifest_sha256,
        "verification": verification,
        "signers": signers,
        "outcome": run.outcome.kind(),
        "detail": run.outcome.to_string(),
        "exit_code": exit_code,
        "fuel_limit": run.fuel.limit,
        "fuel_consumed": run.fuel.consumed,
        "wall_time_us": u64::try_from(run.wall_time.as_micros()).unwrap_or(u64::MAX),
        "stdout_bytes": run.stdout.len(),
        "stderr_bytes": run.stderr.len(),
        "output_truncated": run.stdout_truncated || run.stderr_truncated,
        "cache": report.cache.kind(),
    });
    Event::new(kinds::RUN_FINISHED, actor(), object(data))
}

/// `run.refused` for a tenant whose handling failed inside the host (a panic
/// caught by `--all`), with stage `host` and reason `host_panic`.
pub fn host_failure_event(bundle: &Path, message: &str) -> Event {
    let data = json!({
        "bundle": bundle.display().to_string(),
        "stage": "host",
        "reason": "host_panic",
        "detail": message,
    });
    Event::new(RUN_REFUSED, actor(), object(data))
}

/// `run.refused` for a bundle that was not run.
pub fn refused_event(bundle: &Path, refusal: &Refusal, mode: VerificationMode) -> Event {
    let data = json!({
        "bundle": bundle.display().to_string(),
        "stage": refusal.stage(),
        "reason": refusal.reason_code(),
        "detail": refusal.to_string(),
        "verification": match mode {
            VerificationMode::Required => "required",
            VerificationMode::DangerAllowUnsigned => "danger_allow_unsigned",
        },
    });
    Event::new(RUN_REFUSED, actor(), object(data))
}
