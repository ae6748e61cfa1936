//! Verify-then-execute for one bundle: the path every run takes.
//!
//! The order is fixed and each step works on the output of the one before:
//! the bundle is read once into memory; the signer verifies those bytes and
//! hands them back; the effective policy is built from the *verified*
//! manifest; the *verified* module bytes are validated against that policy,
//! then compiled (or loaded from the cache under their verified hash), linked
//! and run. Nothing is read from disk again after the first read, so nothing
//! that changes on disk can slip between check and use.
//!
//! The only way to skip verification is [`Verification::DangerAllowUnsigned`],
//! which is recorded in the report and bypasses the compile cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use signer::bundle::{BundleBytes, BundleError, ReadLimits};
use signer::manifest::{Manifest, ManifestError};
use signer::trust::TrustStore;
use signer::verify::{VerifyError, danger_accept_unsigned, verify_bundle};
use wasmtime::{InstancePre, Linker};

use crate::cache::{CacheStatus, CompileCache, CompileError, compile};
use crate::engine::NightEngine;
use crate::exec::{Determinism, ExecError, HostState, RunReport, prepare, run};
use crate::policy::{EffectivePolicy, HostPolicies, PolicyError, narrow};
use crate::validate::{DEFAULT_MAX_MODULE_BYTES, ModuleSummary, ValidationError, validate_module};

/// Whether signatures are checked.
#[derive(Debug, Clone, Copy)]
pub enum Verification<'a> {
    /// The bundle must verify against this trust store.
    Required(&'a TrustStore),
    /// Run without verifying. Only for development; recorded everywhere.
    DangerAllowUnsigned,
}

/// What verification established about the bytes that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerificationStatus {
    /// Verified; the distinct signer key ids.
    Verified { signers: Vec<String> },
    /// Not verified, because the caller asked for `--danger-allow-unsigned`.
    DangerUnverified,
}

/// Settings for one bundle run.
#[derive(Debug, Clone)]
pub struct ExecOptions<'a> {
    pub verification: Verification<'a>,
    pub policies: &'a HostPolicies,
    /// `None` compiles every time.
    pub cache: Option<&'a CompileCache>,
    pub max_module_bytes: usize,
    /// The time expiry is checked against.
    pub now: time::OffsetDateTime,
    /// When set, the manifest must name this tenant (a deploy directory's
    /// name), so one tenant's directory cannot carry another's bundle.
    pub expected_tenant: Option<&'a str>,
    /// Host clocks and randomness, or fixed ones for replayable runs.
    pub determinism: Determinism,
    /// The guardian's rollback floors; a bundle below its tenant's floor is
    /// refused, so an old, validly signed version cannot be run by path.
    pub floors: Option<&'a RollbackFloors>,
}

/// What the guardian has accepted per tenant (from its verified state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackFloors {
    pub tenants: BTreeMap<String, TenantFloor>,
    /// Retired tenants (`guardian retire`) and their floors: no version up
    /// to and including the floor may run.
    pub retired: BTreeMap<String, u64>,
}

/// One tenant's rollback floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantFloor {
    /// The highest version ever accepted: anything lower is a downgrade.
    pub floor: u64,
    /// The accepted version and its manifest: the same version with other
    /// bytes is not what was accepted.
    pub version: u64,
    pub manifest_sha256: String,
}

impl<'a> ExecOptions<'a> {
    /// Options with the default module cap, no cache and the current time.
    pub fn new(verification: Verification<'a>, policies: &'a HostPolicies) -> Self {
        Self {
            verification,
            policies,
            cache: None,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            now: time::OffsetDateTime::now_utc(),
            expected_tenant: None,
            determinism: Determinism::Host,
            floors: None,
        }
    }
}

/// Why a bundle was not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("cannot read bundle {path}: {source}")]
    Read { path: PathBuf, source: BundleError },
    #[error("verification failed: {0}")]
    Verify(VerifyError),
    #[error("unverified manifest is invalid: {0}")]
    Manifest(ManifestError),
    #[error("bundle in the directory of tenant {directory} is signed for tenant {manifest}")]
    TenantMismatch { directory: String, manifest: String },
    #[error("{tenant} v{version} is below the rollback floor v{floor}: a newer version has been accepted on this node")]
    BelowFloor { tenant: String, version: u64, floor: u64 },
    #[error(
        "{tenant} was retired on this node at v{floor}: v{version} may not run (only a newer version, once the guardian accepts it)"
    )]
    TenantRetired { tenant: String, version: u64, floor: u64 },
    #[error(
        "{tenant} v{version} is not the v{version} accepted on this node: manifest sha256 {found}, accepted {accepted}"
    )]
    SameVersionDifferentBytes { tenant: String, version: u64, found: String, accepted: String },
    #[error("policy refused: {0}")]
    Policy(PolicyError),
    #[error("module refused: {0}")]
    Validation(ValidationError),
    #[error(transparent)]
    Compile(CompileError),
    #[error(transparent)]
    Exec(ExecError),
}

impl Refusal {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::Read { source, .. } => source.reason_code(),
            Refusal::Verify(e) => e.reason_code(),
            Refusal::Manifest(_) => "malformed_manifest",
            Refusal::TenantMismatch { .. } => "tenant_mismatch",
            Refusal::BelowFloor { .. } => "below_floor",
            Refusal::TenantRetired { .. } => "tenant_retired",
            Refusal::SameVersionDifferentBytes { .. } => "same_version_different_bytes",
            Refusal::Policy(e) => e.reason_code(),
            Refusal::Validation(e) => e.reason_code(),
            Refusal::Compile(_) => "compile_failed",
            Refusal::Exec(ExecError::Link(_)) => "link_failed",
            Refusal::Exec(_) => "setup_failed",
        }
    }

    /// The step that refused: `read`, `verify`, `policy`, `validate`,
    /// `compile` or `setup`.
    pub fn stage(&self) -> &'static str {
        match self {
            Refusal::Read { .. } => "read",
            Refusal::Verify(_)
            | Refusal::Manifest(_)
            | Refusal::TenantMismatch { .. }
            | Refusal::BelowFloor { .. }
            | Refusal::TenantRetired { .. }
            | Refusal::SameVersionDifferentBytes { .. } => "verify",
            Refusal::Policy(_) => "policy",
            Refusal::Validation(_) => "validate",
            Refusal::Compile(_) | Refusal::Exec(ExecError::Link(_)) => "compile",
            Refusal::Exec(_) => "setup",
        }
    }

    /// Whether the refusal is an I/O problem of the host (unreadable files,
    /// directories that cannot be opened) rather than a decision about the
    /// bundle.
    pub fn is_host_io(&self) -> bool {
        match self {
            Refusal::Read { source, .. } => !source.is_about_content(),
            Refusal::Policy(e) => {
                matches!(e, PolicyError::HostDirectory { .. } | PolicyError::Root { .. } | PolicyError::ReadPolicy(_))
            }
            Refusal::Exec(ExecError::Preopen { .. } | ExecError::Store(_)) => true,
            _ => false,
        }
    }
}

/// What is known about a bundle before it runs.
#[derive(Debug, Clone)]
pub struct BundleFacts {
    pub tenant: String,
    pub version: u64,
    pub module_sha256: String,
    pub manifest_sha256: String,
    pub verification: VerificationStatus,
}

/// A bundle that passed every check and is ready to run, possibly many times.
pub struct ReadyBundle {
    pub facts: BundleFacts,
    pub policy: EffectivePolicy,
    pub summary: ModuleSummary,
    pub cache: CacheStatus,
    pre: InstancePre<HostState>,
}

impl std::fmt::Debug for ReadyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyBundle").field("facts", &self.facts).field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The report of a bundle that ran.
#[derive(Debug, Clone)]
pub struct ExecReport {
    pub facts: BundleFacts,
    /// The guest's arguments after `argv[0]`.
    pub args: Vec<String>,
    pub determinism: Determinism,
    pub policy: EffectivePolicy,
    pub cache: CacheStatus,
    pub run: RunReport,
}

/// Reads, verifies, narrows, validates, compiles and links the bundle at
/// `dir`: a bundle directory or a single-file module (see `signer::embed`).
pub fn prepare_bundle(
    engine: &NightEngine,
    linker: &Linker<HostState>,
    dir: &Path,
    options: &ExecOptions<'_>,
) -> Result<ReadyBundle, Refusal> {
    let limits = ReadLimits { max_module_bytes: options.max_module_bytes as u64, ..ReadLimits::default() };
    let bytes =
        BundleBytes::read_any(dir, &limits).map_err(|source| Refusal::Read { path: dir.to_path_buf(), source })?;

    let (verified, verification) = match options.verification {
        Verification::Required(trust) => {
            let verified = verify_bundle(bytes, trust, options.now).map_err(Refusal::Verify)?;
            let signers = verified.signers().iter().map(ToString::to_string).collect();
            (verified, VerificationStatus::Verified { signers })
        }
        Verification::DangerAllowUnsigned => {
            tracing::warn!(bundle = %dir.display(), "running an unverified bundle (--danger-allow-unsigned)");
            (danger_accept_unsigned(bytes).map_err(Refusal::Manifest)?, VerificationStatus::DangerUnverified)
        }
    };
    let manifest = verified.manifest();
    if let Some(expected) = options.expected_tenant
        && expected != manifest.name
    {
        return Err(Refusal::TenantMismatch { directory: expected.to_string(), manifest: manifest.name.clone() });
    }
    if let Some(floors) = options.floors {
        check_floors(manifest, verified.manifest_sha256(), floors)?;
    }

    let host = options.policies.for_tenant(&manifest.name);
    let policy = narrow(&manifest.name, &manifest.capabilities, &host).map_err(Refusal::Policy)?;
    let summary = validate_module(verified.module(), policy.import_policy(), options.max_module_bytes)
        .map_err(Refusal::Validation)?;

    let (module, cache) = match (options.cache, &verification) {
        (Some(cache), VerificationStatus::Verified { .. }) => {
            cache.load_or_compile(engine, &verified).map_err(Refusal::Compile)?
        }
        // The cache only ever holds artifacts of verified modules.
        _ => (compile(engine, verified.module()).map_err(Refusal::Compile)?, CacheStatus::Bypassed),
    };
    let pre = prepare(linker, &module).map_err(Refusal::Exec)?;
    let facts = BundleFacts {
        tenant: manifest.name.clone(),
        version: manifest.version,
        module_sha256: verified.module_sha256().to_string(),
        manifest_sha256: verified.manifest_sha256().to_string(),
        verification,
    };
    Ok(ReadyBundle { facts, policy, summary, cache, pre })
}

/// Refuses a verified manifest below its tenant's floor, at the accepted
/// version with other bytes, or of a retired tenant at or below its floor.
fn check_floors(manifest: &Manifest, manifest_sha256: &str, floors: &RollbackFloors) -> Result<(), Refusal> {
    if let Some(&floor) = floors.retired.get(&manifest.name)
        && manifest.version <= floor
    {
        return Err(Refusal::TenantRetired { tenant: manifest.name.clone(), version: manifest.version, floor });
    }
    let Some(accepted) = floors.tenants.get(&manifest.name) else { return Ok(()) };
    if manifest.version < accepted.floor {
        return Err(Refusal::BelowFloor {
            tenant: manifest.name.clone(),
            version: manifest.version,
            floor: accepted.floor,
        });
    }
    if manifest.version == accepted.version && manifest_sha256 != accepted.manifest_sha256 {
        return Err(Refusal::SameVersionDifferentBytes {
            tenant: manifest.name.clone(),
            version: manifest.version,
            found: manifest_sha256.to_string(),
            accepted: accepted.manifest_sha256.clone(),
        });
    }
    Ok(())
}

/// Runs a prepared bundle once.
pub fn run_ready(
    engine: &NightEngine,
    ready: &ReadyBundle,
    args: &[String],
    determinism: Determinism,
) -> Result<ExecReport, Refusal> {
    let run = run(engine, &ready.pre, &ready.policy, args, determinism).map_err(Refusal::Exec)?;
    Ok(ExecReport {
        facts: ready.facts.clone(),
        args: args.to_vec(),
        determinism,
        policy: ready.policy.clone(),
        cache: ready.cache.clone(),
        run,
    })
}

/// Prepares and runs the bundle in `dir` once.
pub fn exec_bundle(
    engine: &NightEngine,
    linker: &Linker<HostState>,
    dir: &Path,
    args: &[String],
    options: &ExecOptions<'_>,
) -> Result<ExecReport, Refusal> {
    let ready = prepare_bundle(engine, linker, dir, options)?;
    run_ready(engine, &ready, args, options.determinism)
}
