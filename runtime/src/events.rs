//! The audit events a run leaves behind: `run.started` before a guest is
//! instantiated, `run.finished` when it ran (however it ended), `run.refused`
//! when a bundle was not run, and `cache.rejected` when a compile-cache entry
//! failed its checks.
//!
//! This is the runtime's single integration point with the audit log: the
//! binary opens the log before doing anything and appends `run.started`
//! (which checks the log against its signed checkpoint) before the guest can
//! have any effect, so no guest runs unrecorded, even when the log turns out
//! to be tampered with or unwritable.

use std::path::Path;

use audit::{Actor, Event, kinds};
use serde_json::{Map, Value, json};

use crate::cache::{CacheRejection, CacheStatus};
use crate::deploy::TenantFailure;
use crate::exec::Outcome;
use crate::pipeline::{BundleFacts, ExecReport, ReadyBundle, Refusal, VerificationStatus};

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

/// The events to append before `ready` runs: `cache.rejected` if its cache
/// entry was refused, then `run.started`.
pub fn before_run_events(bundle: &Path, ready: &ReadyBundle) -> Vec<Event> {
    let mut events = Vec::with_capacity(2);
    if let CacheStatus::Rebuilt { rejection } = &ready.cache {
        events.push(cache_rejected_event(bundle, &ready.facts, rejection));
    }
    events.push(started_event(bundle, &ready.facts));
    events
}

/// `run.started` for a bundle that passed every check and is about to run.
pub fn started_event(bundle: &Path, facts: &BundleFacts) -> Event {
    let (verification, signers) = verification_fields(&facts.verification);
    let data = json!({
        "bundle": bundle.display().to_string(),
        "tenant": facts.tenant,
        "version": facts.version,
        "module_sha256": facts.module_sha256,
        "manifest_sha256": facts.manifest_sha256,
        "verification": verification,
        "signers": signers,
    });
    Event::new(kinds::RUN_STARTED, actor(), object(data))
}

/// `cache.rejected` for a cache entry that failed its checks.
pub fn cache_rejected_event(bundle: &Path, facts: &BundleFacts, rejection: &CacheRejection) -> Event {
    let data = json!({
        "bundle": bundle.display().to_string(),
        "tenant": facts.tenant,
        "module_sha256": facts.module_sha256,
        "reason": rejection.reason.code(),
        "entry": rejection.entry.display().to_string(),
        "moved_to": rejection.moved_to.as_ref().map(|p| p.display().to_string()),
        "detail": rejection.detail,
    });
    Event::new(kinds::CACHE_REJECTED, actor(), object(data))
}

fn verification_fields(status: &VerificationStatus) -> (&'static str, Vec<String>) {
    match status {
        VerificationStatus::Verified { signers } => ("verified", signers.clone()),
        VerificationStatus::DangerUnverified => ("danger_unverified", Vec::new()),
    }
}

/// `run.finished` for a bundle that ran.
pub fn finished_event(bundle: &Path, report: &ExecReport) -> Event {
    let (verification, signers) = verification_fields(&report.facts.verification);
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

/// `run.refused` for a tenant of `--all` that was not run for a reason
/// outside its bundle: a panic caught in host code (stage `host`), or a
/// directory name that is not UTF-8 (stage `read`).
pub fn tenant_failure_event(bundle: &Path, failure: &TenantFailure) -> Event {
    let data = json!({
        "bundle": bundle.display().to_string(),
        "stage": failure.stage(),
        "reason": failure.reason_code(),
        "detail": failure.to_string(),
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
