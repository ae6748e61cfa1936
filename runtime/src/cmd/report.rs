//! The `--json` output of `runtime exec`, in serialize-only structs so that the
//! shape is decided here and not by the library's types.
//!
//! A single run prints one [`RunJson`]; `--all` prints one [`DeployJson`] whose
//! `tenants` are [`RunJson`] objects in directory-name order. Fields:
//!
//! - `bundle`: the bundle directory; `status`: `ran`, `refused`, or (with
//!   `--all` only, when host code panicked for that tenant) `failed`;
//!   `exit_code`: the exit status this run maps to (see `--help`).
//! - when refused: `refusal` = `{stage, reason, message}`, where `stage` is one
//!   of `read`, `verify`, `policy`, `validate`, `compile`, `setup` and `reason`
//!   a stable snake_case code (the signer's verification codes included).
//! - when ran: `tenant`, `version`, `module_sha256`, `manifest_sha256`,
//!   `verification` (`verified` or `danger_unverified`), `signers` (key ids),
//!   `outcome` = `{kind, code?, detail}` (`kind` one of `exited`,
//!   `fuel_exhausted`, `timeout`, `memory_limit`, `table_limit`,
//!   `output_limit`, `stack_overflow`, `trap`; `trap_kind` for traps), `fuel` =
//!   `{limit, consumed}` (`consumed` is null when it cannot be known, after a
//!   timeout), `wall_time_us`, `peak_memory_bytes`, `stdout`, `stderr` (lossy
//!   UTF-8), `stdout_truncated`, `stderr_truncated`, `cache` (`hit`,
//!   `compiled`, `rebuilt`, `not_stored`, `bypassed`) and `policy` (the
//!   effective policy).

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use runtime::{ExecReport, Outcome, Refusal, TenantFailure, VerificationStatus};

#[derive(Debug, Serialize)]
pub struct RunJson {
    pub bundle: String,
    pub status: &'static str,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalJson>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ran: Option<RanJson>,
}

#[derive(Debug, Serialize)]
pub struct RefusalJson {
    pub stage: &'static str,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct RanJson {
    pub tenant: String,
    pub version: u64,
    pub module_sha256: String,
    pub manifest_sha256: String,
    pub verification: &'static str,
    pub signers: Vec<String>,
    pub outcome: OutcomeJson,
    pub fuel: FuelJson,
    pub wall_time_us: u64,
    pub peak_memory_bytes: usize,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub cache: &'static str,
    pub policy: PolicyJson,
}

#[derive(Debug, Serialize)]
pub struct OutcomeJson {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap_kind: Option<String>,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct FuelJson {
    pub limit: u64,
    pub consumed: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PolicyJson {
    pub fuel: u64,
    pub memory_mib: u32,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    pub env: Vec<String>,
    pub preopens: BTreeMap<String, PreopenJson>,
    pub network: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PreopenJson {
    pub host: String,
    pub mode: &'static str,
}

#[derive(Debug, Serialize)]
pub struct DeployJson {
    pub deploy_dir: String,
    pub exit_code: u8,
    pub summary: SummaryJson,
    pub tenants: Vec<RunJson>,
}

#[derive(Debug, Default, Serialize)]
pub struct SummaryJson {
    pub total: usize,
    pub exited_zero: usize,
    pub exited_nonzero: usize,
    pub stopped_by_limit: usize,
    pub trapped: usize,
    pub refused: usize,
}

pub fn refused(bundle: &Path, refusal: &Refusal, exit_code: u8) -> RunJson {
    RunJson {
        bundle: bundle.display().to_string(),
        status: "refused",
        exit_code,
        refusal: Some(RefusalJson {
            stage: refusal.stage(),
            reason: refusal.reason_code(),
            message: refusal.to_string(),
        }),
        ran: None,
    }
}

/// A tenant of `--all` not run for a reason outside its bundle (a panic in
/// host code, a directory name that is not UTF-8).
pub fn host_failure(bundle: &Path, failure: &TenantFailure, exit_code: u8) -> RunJson {
    RunJson {
        bundle: bundle.display().to_string(),
        status: "failed",
        exit_code,
        refusal: Some(RefusalJson {
            stage: failure.stage(),
            reason: failure.reason_code(),
            message: failure.to_string(),
        }),
        ran: None,
    }
}

pub fn ran(bundle: &Path, report: &ExecReport, exit_code: u8) -> RunJson {
    let (verification, signers) = match &report.facts.verification {
        VerificationStatus::Verified { signers } => ("verified", signers.clone()),
        _ => ("danger_unverified", Vec::new()),
    };
    let run = &report.run;
    let (code, trap_kind) = match &run.outcome {
        Outcome::Exited { code } => (Some(*code), None),
        Outcome::Trap { kind, .. } => (None, Some(kind.clone())),
        _ => (None, None),
    };
    let policy = &report.policy;
    RunJson {
        bundle: bundle.display().to_string(),
        status: "ran",
        exit_code,
        refusal: None,
        ran: Some(RanJson {
            tenant: report.facts.tenant.clone(),
            version: report.facts.version,
            module_sha256: report.facts.module_sha256.clone(),
            manifest_sha256: report.facts.manifest_sha256.clone(),
            verification,
            signers,
            outcome: OutcomeJson { kind: run.outcome.kind(), code, trap_kind, detail: run.outcome.to_string() },
            fuel: FuelJson { limit: run.fuel.limit, consumed: run.fuel.consumed },
            wall_time_us: u64::try_from(run.wall_time.as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: run.peak_memory_bytes,
            stdout: String::from_utf8_lossy(&run.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
            stdout_truncated: run.stdout_truncated,
            stderr_truncated: run.stderr_truncated,
            cache: report.cache.kind(),
            policy: PolicyJson {
                fuel: policy.fuel,
                memory_mib: policy.memory_mib,
                timeout_ms: u64::try_from(policy.timeout.as_millis()).unwrap_or(u64::MAX),
                max_output_bytes: policy.max_output_bytes,
                env: policy.env.keys().cloned().collect(),
                preopens: policy
                    .preopens
                    .iter()
                    .map(|p| {
                        (p.guest.clone(), PreopenJson { host: p.host.display().to_string(), mode: p.mode.as_str() })
                    })
                    .collect(),
                network: policy.network.iter().map(ToString::to_string).collect(),
            },
        }),
    }
}
