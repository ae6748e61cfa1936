//! The guardian: one object that owns the state directory, the trust store
//! and the audit recorder, and checks tenants, accepting signed upgrades and
//! rolling everything else back.
//!
//! A check of a set of tenants reads and hashes them in parallel (one
//! worker per core), keeps the bytes only of those that drifted, and then
//! handles the drifted ones one at a time, in name order:
//!
//! 1. bundle files identical to the verified version, only the layout
//!    differs (a file added, a mode loosened) → `drift.detected` with reason
//!    `layout`, then the verified version is restored;
//! 2. otherwise the bytes are judged ([`crate::decide::evaluate`]): accepted
//!    bytes become the tenant's new verified version (`module.trusted` /
//!    `module.upgraded`, stored, floor raised);
//! 3. refused bytes → `drift.detected`, then rollback to the last verified
//!    version (`rollback.completed`), or, with none, quarantine of the whole
//!    tenant path (`drift.quarantined`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use signer::bundle::ReadLimits;
use signer::keyfile::KeyFileError;
use signer::trust::{TrustError, TrustStore};
use signer::verify::{VerifyError, verify_bundle};

use crate::RepairMode;
use crate::audit_mirror::AuditTamper;
use crate::decide::{Admission, Known, Refusal, evaluate};
use crate::drift::{DriftItem, Expected, compare};
use crate::events::{
    self, Admitted, AuditSetup, DriftAction, EventsError, GuardianEvent, Observer, Recorder, RollbackTimings,
};
use crate::quarantine::{Quarantine, QuarantineError};
use crate::restore::{self, Swapped};
use crate::snapshot::TenantSnapshot;
use crate::state::{RetiredTenant, State, StateDir, StateError, TenantRecord};
use crate::store::{Store, StoreError};

/// Where the audit log is and which key signs its checkpoints.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub log: PathBuf,
    /// `<log>.checkpoint` when `None`.
    pub checkpoint: Option<PathBuf>,
    /// The host key (created on first use, see
    /// `signer::keyfile::load_or_create_host_key`); when `None`, no
    /// checkpoints are written and they are verified with the trust store's
    /// log key if it has exactly one.
    pub host_key: Option<PathBuf>,
    /// Checkpoint origin line (`signer::config::NodeConfig::origin`).
    pub origin: String,
    /// Where to publish the log as C2SP tlog-tiles (`audit::tiles`),
    /// refreshed whenever the log grows and checks out against the mirror.
    pub tiles_dir: Option<PathBuf>,
}

/// Hooks that make timing-dependent behaviour testable. Never set in production.
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// Sleep this long after staging a rollback and again after the swap,
    /// logging `test hook: rollback paused` with the step, so that a test can
    /// kill the process inside the window.
    pub rollback_pause: Option<Duration>,
}

/// Everything the guardian needs to know.
#[derive(Debug, Clone)]
pub struct GuardianOptions {
    pub deploy_dir: PathBuf,
    pub trust_dir: PathBuf,
    pub state_dir: PathBuf,
    pub audit: AuditOptions,
    pub admission: Admission,
    pub limits: ReadLimits,
    pub test_hooks: TestHooks,
}

/// Why the guardian could not do its work (as opposed to drift, which is a result).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardianError {
    #[error("trust store: {0}")]
    Trust(#[from] TrustError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("host key: {0}")]
    HostKey(#[from] KeyFileError),
    #[error("checkpoint origin {origin:?} is not usable: {reason}")]
    Origin { origin: String, reason: String },
    #[error(
        "the state directory {state} and the deploy directory {deploy} overlap; keep the state outside the deploy tree"
    )]
    Overlap { state: PathBuf, deploy: PathBuf },
    #[error("cannot watch {path}: {source}")]
    Watch { path: PathBuf, source: notify::Error },
    #[error("tenant {tenant} is not in service on this node (the state knows no such tenant)")]
    UnknownTenant { tenant: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> GuardianError + '_ {
    move |source| GuardianError::Io { path: path.to_path_buf(), source }
}

/// What happened to one tenant in a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Drift found and, without `--repair`, left in place.
    DriftReported,
    /// The repair could not be completed (see `reason`).
    Failed,
    /// Refused with nothing to roll back to: moved to quarantine.
    Quarantined,
    /// The last verified version was restored.
    RolledBack,
    /// First verified version accepted.
    Trusted,
    /// A valid signed upgrade was accepted.
    Upgraded,
}

/// One tenant that was not clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantOutcome {
    pub tenant: String,
    pub action: Action,
    /// The version now verified and deployed, where there is one.
    pub version: Option<u64>,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
}

/// A deploy entry whose name is not UTF-8: its escaped name and its path.
struct NotUtf8Entry {
    escaped: String,
    path: PathBuf,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Tenant paths looked at.
    pub checked: usize,
    /// Every tenant that was not clean, in the order handled.
    pub outcomes: Vec<TenantOutcome>,
    /// The audit log or its checkpoint was found tampered.
    pub audit_tampered: Option<AuditTamper>,
}

impl ScanReport {
    /// Whether anything was found that is not a valid upgrade.
    pub fn drift_found(&self) -> bool {
        self.audit_tampered.is_some()
            || self.outcomes.iter().any(|o| {
                matches!(o.action, Action::DriftReported | Action::Quarantined | Action::RolledBack | Action::Failed)
            })
    }

    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|o| o.action == Action::Failed)
    }
}

/// A tenant that was not clean when read.
struct Inspected {
    tenant: String,
    result: io::Result<(TenantSnapshot, Vec<DriftItem>)>,
}

/// The guardian of one deploy directory.
pub struct Guardian {
    options: GuardianOptions,
    mode: RepairMode,
    trust: TrustStore,
    state_dir: StateDir,
    state: State,
    store: Store,
    quarantine: Quarantine,
    recorder: Recorder,
    initial_scan_done: bool,
    /// Events of accepted versions, recorded together at the end of a round
    /// (or before the next event that must be recorded at once), after the
    /// store entries they name were flushed.
    deferred: Vec<GuardianEvent>,
    /// A tenant record changed since `state.json` was last written.
    tenants_changed: bool,
}

impl std::fmt::Debug for Guardian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guardian")
            .field("deploy_dir", &self.options.deploy_dir)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn expected(record: &TenantRecord) -> Expected<'_> {
    Expected { digest: &record.digest, files: &record.files }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Guardian {
    /// Locks and loads the state directory, checks its integrity (every
    /// store entry the state names is re-hashed and re-verified), loads the
    /// trust store, opens the audit log and its mirror, and quarantines what
    /// an interrupted rollback left behind.
    pub fn open(options: GuardianOptions, mode: RepairMode, observer: Observer) -> Result<Guardian, GuardianError> {
        let deploy_meta = fs::metadata(&options.deploy_dir).map_err(io_error(&options.deploy_dir))?;
        if !deploy_meta.is_dir() {
            return Err(io_error(&options.deploy_dir)(io::Error::other("not a directory")));
        }
        // The host key signs the state as well as checkpoints; without a
        // configured one it lives in the state directory.
        let host_key_path = options.audit.host_key.clone().unwrap_or_else(|| options.state_dir.join("host.key"));
        let host_key = signer::keyfile::load_or_create_host_key(&host_key_path)?;
        let state_dir = StateDir::open_locked(&options.state_dir, host_key.clone())?;
        let canonical = |p: &Path| fs::canonicalize(p).map_err(io_error(p));
        let (state_abs, deploy_abs) = (canonical(&options.state_dir)?, canonical(&options.deploy_dir)?);
        if state_abs.starts_with(&deploy_abs) || deploy_abs.starts_with(&state_abs) {
            return Err(GuardianError::Overlap { state: state_abs, deploy: deploy_abs });
        }
        let state = state_dir.load()?;
        let trust = TrustStore::load(&options.trust_dir)?;
        let store = Store::open(&state_dir.store_dir())?;
        let quarantine = Quarantine::open(&state_dir.quarantine_dir())?;
        check_integrity(&state, &store, &trust, &options.limits)?;

        let audit = &options.audit;
        let (signer, trusted_key) = match &audit.host_key {
            Some(_) => {
                let key = &host_key;
                if trust.log_keys_any().next().is_some()
                    && let Err(refusal) = trust.log_key_for(key.key_id(), &audit.origin)
                {
                    tracing::warn!(key_id = %key.key_id(), origin = %audit.origin, %refusal, "others cannot verify this host's checkpoints");
                }
                let signer = audit::CheckpointSigner::new(audit.origin.clone(), key.signing_key().clone())
                    .map_err(|e| GuardianError::Origin { origin: audit.origin.clone(), reason: e.to_string() })?;
                let verifying = signer.verifying_key();
                (Some(signer), Some(verifying))
            }
            None => {
                let mut log_keys = trust.log_keys_for(&audit.origin);
                match (log_keys.next(), log_keys.next()) {
                    (Some(only), None) => (None, Some(*only.verifying_key())),
                    _ => (None, None),
                }
            }
        };
        let setup = AuditSetup {
            checkpoint: audit.checkpoint.clone().unwrap_or_else(|| audit::default_checkpoint_path(&audit.log)),
            log: audit.log.clone(),
            mirror_dir: state_dir.audit_mirror_dir(),
            tiles_dir: audit.tiles_dir.clone(),
            signer,
            trusted_key,
        };
        let recorder = Recorder::open(setup, quarantine.clone(), mode, observer)?;
        let mut guardian = Guardian {
            options,
            mode,
            trust,
            state_dir,
            state,
            store,
            quarantine,
            recorder,
            initial_scan_done: false,
            deferred: Vec::new(),
            tenants_changed: false,
        };
        guardian.recover_leftovers()?;
        guardian.save()?;
        Ok(guardian)
    }

    pub fn deploy_dir(&self) -> &Path {
        &self.options.deploy_dir
    }

    pub fn audit_log(&self) -> &Path {
        &self.options.audit.log
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Records events that are not about a check (daemon start and stop).
    pub fn record(&mut self, events: Vec<GuardianEvent>) -> Result<(), GuardianError> {
        self.record_now(events)?;
        self.save()
    }

    /// Records `events` now, after any deferred ones (store flushed first),
    /// so the audit log keeps the order things happened in.
    fn record_now(&mut self, events: Vec<GuardianEvent>) -> Result<(), GuardianError> {
        let mut batch = std::mem::take(&mut self.deferred);
        if !batch.is_empty() {
            self.store.sync()?;
        }
        batch.extend(events);
        Ok(self.recorder.record(batch)?)
    }

    /// Flushes deferred events, then writes the state: the store entries it
    /// names are durable before it, and the audit log has every decision it
    /// reflects.
    fn save(&mut self) -> Result<(), GuardianError> {
        self.record_now(Vec::new())?;
        if self.tenants_changed {
            self.state_dir.save_tenants(&self.state)?;
            self.tenants_changed = false;
        }
        let recent = self.recorder.take_recent();
        if !recent.is_empty() {
            for event in recent {
                self.state.push_event(event);
            }
            self.state_dir.save_recent(&self.state)?;
        }
        Ok(())
    }

    /// Quarantines staging entries left in the deploy directory. Never fatal:
    /// anyone who writes the deploy directory can make such an entry, and one
    /// that cannot be moved must not keep the guardian from starting (it is
    /// logged, and retried at the next start).
    fn recover_leftovers(&mut self) -> Result<(), GuardianError> {
        let deploy = self.options.deploy_dir.clone();
        for (tenant, path) in restore::leftovers(&deploy).map_err(io_error(&deploy))? {
            match self.mode {
                RepairMode::Repair => {
                    let kept = match self.quarantine.take(&path, &tenant) {
                        Ok(kept) => kept,
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "cannot quarantine a staging leftover; going on");
                            continue;
                        }
                    };
                    tracing::warn!(tenant, quarantined_to = %kept.display(), "quarantined what an interrupted rollback left behind");
                    self.record_now(vec![events::rollback_recovered(&tenant, &kept)])?;
                }
                RepairMode::ReportOnly => {
                    tracing::warn!(path = %path.display(), "an interrupted rollback left this behind")
                }
            }
        }
        Ok(())
    }

    /// Reloads the trust store when asked to (SIGHUP) and records the result:
    /// `trust.reloaded`, or `trust.reload_failed` with the reason, keeping
    /// the old store. Returns whether a new store is in force.
    pub fn reload_trust_on_request(&mut self) -> Result<bool, GuardianError> {
        let dir = self.options.trust_dir.clone();
        match TrustStore::load(&dir) {
            Ok(trust) => {
                let keys = trust.keys().count();
                tracing::info!(trust_dir = %dir.display(), keys, "trust store reloaded");
                self.trust = trust;
                self.record_now(vec![events::trust_reloaded(&dir, keys)])?;
                Ok(true)
            }
            Err(e) => {
                tracing::error!(trust_dir = %dir.display(), error = %e, "trust store does not load; keeping the previous one");
                self.record_now(vec![events::trust_reload_failed(&dir, &e.to_string())])?;
                Ok(false)
            }
        }
    }

    /// Reloads the trust store, keeping the old one if the new one does not load.
    fn reload_trust(&mut self) {
        match TrustStore::load(&self.options.trust_dir) {
            Ok(trust) => self.trust = trust,
            Err(e) => tracing::error!(error = %e, "trust store does not load; keeping the previous one"),
        }
    }

    /// Every tenant name to look at: those in the state and every entry of
    /// the deploy directory whose name does not start with `.`; and, apart,
    /// the entries whose names are not UTF-8.
    fn tenant_names(&self) -> Result<(BTreeSet<String>, Vec<NotUtf8Entry>), GuardianError> {
        let deploy = &self.options.deploy_dir;
        let mut names: BTreeSet<String> = self.state.tenants.keys().cloned().collect();
        let mut not_utf8 = Vec::new();
        for entry in fs::read_dir(deploy).map_err(io_error(deploy))? {
            let entry = entry.map_err(io_error(deploy))?;
            match entry.file_name().into_string() {
                Ok(name) if name.starts_with('.') => {}
                Ok(name) => {
                    names.insert(name);
                }
                Err(raw) => not_utf8.push(NotUtf8Entry { escaped: signer::text::escape_os(&raw), path: entry.path() }),
            }
        }
        Ok((names, not_utf8))
    }

    /// A deploy entry whose name is not UTF-8 can be no tenant (names are
    /// UTF-8 in manifests, the trust store and the state), yet a runtime that
    /// lists the directory could run it: so it is refused by name, and in
    /// repair mode moved to quarantine, never skipped.
    fn refuse_name_not_utf8(&mut self, escaped: &str, path: &Path) -> Result<TenantOutcome, GuardianError> {
        const CODE: &str = "tenant_name_not_utf8";
        let reason = format!("deploy entry {escaped} has a name that is not valid UTF-8");
        tracing::warn!(name = escaped, "{reason}");
        match self.mode {
            RepairMode::Repair => {
                let kept = self.quarantine.take(path, "name-not-utf8")?;
                self.record_now(vec![events::drift_quarantined(escaped, CODE, Some(&kept))])?;
                Ok(self.outcome(escaped, Action::Quarantined, None, CODE, reason))
            }
            RepairMode::ReportOnly => Ok(self.outcome(escaped, Action::DriftReported, None, CODE, reason)),
        }
    }

    /// Checks every tenant and the audit log once. The trust store is
    /// reloaded first, so revocations take effect at the next full scan.
    pub fn scan(&mut self) -> Result<ScanReport, GuardianError> {
        self.reload_trust();
        let (names, not_utf8) = self.tenant_names()?;
        let observed: BTreeMap<String, Option<Instant>> = names.into_iter().map(|n| (n, None)).collect();
        let mut report = self.check_tenants(&observed)?;
        for entry in not_utf8 {
            report.checked += 1;
            let outcome = self.refuse_name_not_utf8(&entry.escaped, &entry.path)?;
            report.outcomes.push(outcome);
        }
        self.recorder.check_audit_full()?;
        // Whatever was found since the last scan: at start-up, before an
        // append, or just now.
        report.audit_tampered = self.recorder.take_findings().pop();
        self.initial_scan_done = true;
        self.save()?;
        Ok(report)
    }

    /// Applies `retention` (see [`crate::gc`]): trims the tenants' histories
    /// and writes the state first, then removes the store entries it no
    /// longer names and old quarantine entries, and records `gc.completed`.
    pub fn gc(&mut self, retention: &crate::gc::Retention) -> Result<crate::gc::GcReport, GuardianError> {
        let keep_previous = retention.keep_versions.max(1) - 1;
        let mut report = crate::gc::GcReport {
            keep_versions: keep_previous + 1,
            quarantine_max_age_days: retention.quarantine_max_age.as_secs() / 86_400,
            ..Default::default()
        };
        for record in self.state.tenants.values_mut() {
            let excess = record.previous.len().saturating_sub(keep_previous);
            if excess > 0 {
                record.previous.drain(..excess);
                report.versions_forgotten += excess;
                self.tenants_changed = true;
            }
        }
        // The state must never name a removed entry, even after a crash.
        self.save()?;
        let referenced: std::collections::BTreeSet<String> = self
            .state
            .tenants
            .values()
            .flat_map(|r| std::iter::once(r.digest.clone()).chain(r.previous.iter().map(|p| p.digest.clone())))
            .collect();
        let store_dir = self.state_dir.store_dir();
        let store = crate::gc::prune_store(&store_dir, &referenced).map_err(io_error(&store_dir))?;
        let quarantine_dir = self.quarantine.root().to_path_buf();
        let quarantine =
            crate::gc::prune_quarantine(&quarantine_dir, retention.quarantine_max_age, std::time::SystemTime::now())
                .map_err(io_error(&quarantine_dir))?;
        report.store_removed = store.removed;
        report.quarantine_removed = quarantine.removed;
        report.skipped = [store.skipped, quarantine.skipped].concat();
        report.bytes_freed = report.store_removed.iter().chain(&report.quarantine_removed).map(|r| r.bytes).sum();
        tracing::info!(
            store_removed = report.store_removed.len(),
            quarantine_removed = report.quarantine_removed.len(),
            bytes_freed = report.bytes_freed,
            skipped = report.skipped.len(),
            "retention pass"
        );
        self.record_now(vec![events::gc_completed(&report)])?;
        self.save()?;
        Ok(report)
    }

    /// Takes `tenant` out of service for good: the state forgets its record
    /// but keeps its floor as a tombstone ([`RetiredTenant`]), so neither
    /// `runtime exec` nor the guardian accepts any version it ever had; its
    /// deploy directory is moved into the quarantine; `tenant.retired`
    /// records both. The tombstone is written first, so a crash part way
    /// leaves a tenant that nothing runs, and retiring it again (allowed)
    /// finishes the job.
    pub fn retire(&mut self, tenant: &str) -> Result<RetiredTenant, GuardianError> {
        let retired = match self.state.tenants.remove(tenant) {
            Some(record) => {
                let retired = RetiredTenant {
                    version: record.version,
                    floor: record.floor,
                    retired_at: signer::manifest::format_rfc3339(time::OffsetDateTime::now_utc()),
                };
                self.state.retired.insert(tenant.to_string(), retired.clone());
                self.tenants_changed = true;
                self.save()?;
                retired
            }
            None => self
                .state
                .retired
                .get(tenant)
                .cloned()
                .ok_or_else(|| GuardianError::UnknownTenant { tenant: tenant.to_string() })?,
        };
        let path = self.options.deploy_dir.join(tenant);
        let quarantined = match fs::symlink_metadata(&path) {
            Ok(_) => Some(self.quarantine.take(&path, tenant)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&path)(e)),
        };
        tracing::info!(tenant, version = retired.version, floor = retired.floor, "tenant retired");
        self.record_now(vec![events::tenant_retired(tenant, &retired, quarantined.as_deref())])?;
        self.save()?;
        Ok(retired)
    }

    /// Checks the audit log against its mirror (and repairs it in repair mode).
    pub fn check_audit(&mut self) -> Result<Option<AuditTamper>, GuardianError> {
        self.recorder.check_audit()?;
        let found = self.recorder.take_findings().pop();
        if found.is_some() {
            self.save()?;
        }
        Ok(found)
    }

    /// Checks the named tenants; each may carry the time of the first file
    /// event that concerned it, for the rollback timings.
    pub fn check_tenants(&mut self, tenants: &BTreeMap<String, Option<Instant>>) -> Result<ScanReport, GuardianError> {
        let mut report = ScanReport::default();
        let mut names: Vec<String> = tenants.keys().cloned().collect();
        // A rollback whose result changed again before it was re-verified is
        // checked again, a bounded number of times.
        for _round in 0..3 {
            if names.is_empty() {
                break;
            }
            let detected = Instant::now();
            let mut remaining = std::mem::take(&mut names);
            report.checked += remaining.len();
            while !remaining.is_empty() {
                let (inspected, not_reached) =
                    inspect(&self.options.deploy_dir, &self.options.limits, &self.state, &remaining);
                remaining = not_reached;
                for Inspected { tenant, result } in inspected {
                    let event_at = tenants.get(&tenant).copied().flatten();
                    let outcome = match result {
                        Ok((snapshot, items)) => self.handle(&tenant, snapshot, items, detected, event_at),
                        Err(e) => Err(GuardianError::Io { path: self.options.deploy_dir.join(&tenant), source: e }),
                    };
                    match outcome {
                        Ok((outcome, again)) => {
                            if again {
                                names.push(tenant.clone());
                            }
                            report.outcomes.push(outcome);
                        }
                        Err(e) => {
                            tracing::error!(tenant, error = %e, "check failed");
                            report.outcomes.push(TenantOutcome {
                                tenant,
                                action: Action::Failed,
                                version: None,
                                reason_code: Some("error".into()),
                                reason: Some(e.to_string()),
                            });
                        }
                    }
                }
            }
            self.save()?;
        }
        Ok(report)
    }

    /// Handles one drifted tenant. The flag asks for another check (the
    /// tenant changed again while it was being rolled back).
    fn handle(
        &mut self,
        tenant: &str,
        mut snapshot: TenantSnapshot,
        items: Vec<DriftItem>,
        detected: Instant,
        event_at: Option<Instant>,
    ) -> Result<(TenantOutcome, bool), GuardianError> {
        let current = self.state.tenants.get(tenant).cloned();
        if let Some(current) = current.as_ref().filter(|c| snapshot.content_records() == c.files) {
            return self.repair_layout(tenant, current, &items, detected, event_at);
        }
        let admitted = if self.initial_scan_done || !self.state.tenants.is_empty() || !self.state.retired.is_empty() {
            Admitted::NewTenant
        } else {
            Admitted::FirstRun
        };
        let admission = if admitted == Admitted::FirstRun { Admission::AcceptSigned } else { self.options.admission };
        let now = time::OffsetDateTime::now_utc();
        let known = match (&current, self.state.retired.get(tenant)) {
            (Some(record), _) => Known::Current(record),
            (None, Some(retired)) => Known::Retired(retired),
            (None, None) => Known::New,
        };
        match evaluate(tenant, &mut snapshot, known, admission, &self.trust, &self.options.limits, now) {
            Ok(accepted) => {
                let digest = self.store.put(&accepted.files)?;
                let v = &accepted.verified;
                let previous = current.as_ref().map(|c| c.history_for_successor(&digest)).unwrap_or_default();
                let record = TenantRecord {
                    version: v.manifest().version,
                    version_label: v.manifest().version_label.clone(),
                    floor: current.as_ref().map_or(v.manifest().version, |c| c.floor.max(v.manifest().version)),
                    digest,
                    manifest_sha256: v.manifest_sha256().to_string(),
                    module_sha256: v.module_sha256().to_string(),
                    files: accepted.files.records(),
                    signers: v.signers().iter().map(ToString::to_string).collect(),
                    accepted_at: signer::manifest::format_rfc3339(now),
                    previous,
                };
                self.state.tenants.insert(tenant.to_string(), record.clone());
                // Above its retirement floor, a retired name is a new tenant.
                self.state.retired.remove(tenant);
                self.tenants_changed = true;
                let (event, action) = match &current {
                    Some(from) => (events::module_upgraded(tenant, from, &record, &items), Action::Upgraded),
                    None => (events::module_trusted(tenant, &record, admitted), Action::Trusted),
                };
                tracing::info!(tenant, version = record.version, kind = event.kind, "accepted a verified version");
                self.deferred.push(event);
                let layout = compare(tenant, Some(expected(&record)), &snapshot);
                if !layout.is_empty() {
                    return self.repair_layout(tenant, &record, &layout, detected, event_at);
                }
                let outcome = TenantOutcome {
                    tenant: tenant.to_string(),
                    action,
                    version: Some(record.version),
                    reason_code: None,
                    reason: None,
                };
                Ok((outcome, false))
            }
            Err(refusal) => self.refuse(tenant, current.as_ref(), &items, &refusal, detected, event_at),
        }
    }

    fn repair_layout(
        &mut self,
        tenant: &str,
        record: &TenantRecord,
        items: &[DriftItem],
        detected: Instant,
        event_at: Option<Instant>,
    ) -> Result<(TenantOutcome, bool), GuardianError> {
        let action = if self.mode == RepairMode::Repair { DriftAction::Rollback } else { DriftAction::Report };
        tracing::warn!(tenant, changes = items.len(), "layout drift");
        self.record_now(vec![events::drift_detected(tenant, items, None, action)])?;
        match self.mode {
            RepairMode::Repair => self.rollback(tenant, record, "layout", detected, event_at),
            RepairMode::ReportOnly => Ok((
                self.outcome(
                    tenant,
                    Action::DriftReported,
                    Some(record.version),
                    "layout",
                    "files added or permissions loosened".into(),
                ),
                false,
            )),
        }
    }

    fn refuse(
        &mut self,
        tenant: &str,
        current: Option<&TenantRecord>,
        items: &[DriftItem],
        refusal: &Refusal,
        detected: Instant,
        event_at: Option<Instant>,
    ) -> Result<(TenantOutcome, bool), GuardianError> {
        let action = match (self.mode, current) {
            (RepairMode::ReportOnly, _) => DriftAction::Report,
            (RepairMode::Repair, Some(_)) => DriftAction::Rollback,
            (RepairMode::Repair, None) => DriftAction::Quarantine,
        };
        tracing::warn!(tenant, reason_code = refusal.reason_code(), reason = %refusal, ?action, "drift refused");
        self.record_now(vec![events::drift_detected(tenant, items, Some(refusal), action)])?;
        let code = refusal.reason_code();
        match (action, current) {
            (DriftAction::Rollback, Some(record)) => self.rollback(tenant, record, code, detected, event_at),
            (DriftAction::Quarantine, _) => {
                let path = self.options.deploy_dir.join(tenant);
                let kept = match fs::symlink_metadata(&path) {
                    Ok(_) => Some(self.quarantine.take(&path, tenant)?),
                    Err(_) => None,
                };
                self.record_now(vec![events::drift_quarantined(tenant, code, kept.as_deref())])?;
                Ok((self.outcome(tenant, Action::Quarantined, None, code, refusal.to_string()), false))
            }
            _ => Ok((
                self.outcome(tenant, Action::DriftReported, current.map(|c| c.version), code, refusal.to_string()),
                false,
            )),
        }
    }

    fn outcome(&self, tenant: &str, action: Action, version: Option<u64>, code: &str, reason: String) -> TenantOutcome {
        TenantOutcome {
            tenant: tenant.to_string(),
            action,
            version,
            reason_code: Some(code.to_string()),
            reason: Some(reason),
        }
    }

    fn pause(&self, step: &str, tenant: &str) {
        if let Some(pause) = self.options.test_hooks.rollback_pause {
            tracing::warn!(tenant, step, pause_ms = micros(pause) / 1000, "test hook: rollback paused");
            std::thread::sleep(pause);
        }
    }

    /// Restores `record` at the tenant path; see [`crate::restore`].
    /// Restores `record` at the tenant path; when that cannot be done, fails
    /// closed (see [`Guardian::take_out_of_service`]).
    fn rollback(
        &mut self,
        tenant: &str,
        record: &TenantRecord,
        reason_code: &str,
        detected: Instant,
        event_at: Option<Instant>,
    ) -> Result<(TenantOutcome, bool), GuardianError> {
        let deploy = self.options.deploy_dir.clone();
        let start = Instant::now();
        let staged = self
            .store
            .get(&record.digest, &self.options.limits)
            .map_err(GuardianError::from)
            .and_then(|files| restore::stage(&deploy, tenant, &files).map_err(io_error(&deploy)));
        let staging = match staged {
            Ok(staging) => staging,
            Err(e) => return self.take_out_of_service(tenant, record, reason_code, "stage", &e),
        };
        let staged = Instant::now();
        self.pause("staged", tenant);
        let swap_start = Instant::now();
        let swapped = match restore::swap_in(&deploy, tenant, &staging).map_err(io_error(&staging)) {
            Ok(swapped) => swapped,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return self.take_out_of_service(tenant, record, reason_code, "swap", &e);
            }
        };
        let swapped_at = Instant::now();
        self.pause("swapped", tenant);
        let quarantine_start = Instant::now();
        let kept = match swapped {
            Swapped::Exchanged { evicted } => Some(self.quarantine.take(&evicted, tenant)?),
            Swapped::Placed => None,
        };
        let quarantined_at = Instant::now();
        let path = deploy.join(tenant);
        let mut snapshot = TenantSnapshot::take(&path, &self.options.limits).map_err(io_error(&path))?;
        let changed_again = !compare(tenant, Some(expected(record)), &snapshot).is_empty();
        let reverified = if changed_again {
            Err("changed_again".to_string())
        } else {
            let now = time::OffsetDateTime::now_utc();
            evaluate(
                tenant,
                &mut snapshot,
                Known::Current(record),
                Admission::AcceptSigned,
                &self.trust,
                &self.options.limits,
                now,
            )
            .map(|_| ())
            .map_err(|r| r.reason_code().to_string())
        };
        let done = Instant::now();
        let timings = RollbackTimings {
            stage_us: micros(staged - start),
            swap_us: micros(swapped_at - swap_start),
            quarantine_us: micros(quarantined_at - quarantine_start),
            reverify_us: micros(done - quarantined_at),
            since_detection_us: micros(done - detected),
            since_event_us: event_at.map(|at| micros(done.saturating_duration_since(at))),
        };
        let failure = reverified.as_ref().err().map(String::as_str);
        let event = events::rollback_completed(tenant, record, reason_code, kept.as_deref(), failure, &timings);
        tracing::info!(
            tenant,
            version = record.version,
            reason_code,
            reverified = failure.is_none(),
            "rollback completed"
        );
        self.record_now(vec![event])?;
        let outcome = self.outcome(
            tenant,
            Action::RolledBack,
            Some(record.version),
            reason_code,
            format!("restored version {}", record.version),
        );
        Ok((outcome, changed_again))
    }
}

impl Guardian {
    /// Fail closed: a drifted tenant whose verified version cannot be put
    /// back is moved out of the deploy tree into quarantine, so that neither
    /// `runtime exec --all` nor anything else runs the drifted bytes, and
    /// `rollback.failed` is recorded with the step and the error (it shows
    /// in `guardian status`). The tenant comes back with the next valid
    /// deployment or the next successful rollback.
    fn take_out_of_service(
        &mut self,
        tenant: &str,
        record: &TenantRecord,
        reason_code: &str,
        step: &str,
        error: &GuardianError,
    ) -> Result<(TenantOutcome, bool), GuardianError> {
        let path = self.options.deploy_dir.join(tenant);
        tracing::error!(tenant, step, %error, "rollback failed; taking the tenant out of service");
        let kept = match fs::symlink_metadata(&path) {
            Ok(_) => match self.quarantine.take(&path, tenant) {
                Ok(kept) => Some(kept),
                Err(e) => {
                    tracing::error!(tenant, error = %e, "cannot take the drifted tenant out of the deploy tree either");
                    None
                }
            },
            Err(_) => None,
        };
        let event = events::rollback_failed(tenant, record, reason_code, step, &error.to_string(), kept.as_deref());
        self.record_now(vec![event])?;
        let reason = match &kept {
            Some(kept) => format!("rollback failed at {step} ({error}); the drifted tenant is in {}", kept.display()),
            None => format!("rollback failed at {step} ({error}); the drifted tenant could not be moved"),
        };
        Ok((self.outcome(tenant, Action::Failed, Some(record.version), "rollback_failed", reason), false))
    }
}

/// How many bytes of tenant files the snapshots of drifted tenants may hold
/// at once: past it, a scan hands over what it has before reading more, so
/// a deploy-directory writer who fills many tenants with large modules costs
/// at most this (plus one snapshot per worker being read), not their sum.
pub const SCAN_BYTE_BUDGET: u64 = 32 * 1024 * 1024;

/// Reads and compares `names` in parallel; returns those not clean, in name
/// order, and the names not reached because the snapshots held reached
/// [`SCAN_BYTE_BUDGET`] (clean tenants hold hashes only).
fn inspect(deploy: &Path, limits: &ReadLimits, state: &State, names: &[String]) -> (Vec<Inspected>, Vec<String>) {
    let held = AtomicU64::new(0);
    let reached = Mutex::new(vec![false; names.len()]);
    let indexed: Vec<(usize, &String)> = names.iter().enumerate().collect();
    let mut found = in_parallel(&indexed, 4, |(index, tenant)| {
        // Reserve what the module will take before reading it, so that two
        // workers cannot both read a large tenant past the budget; the first
        // tenant of a call is always read, so every call makes progress.
        let estimate = fs::symlink_metadata(deploy.join(tenant).join(signer::bundle::MODULE_FILE))
            .map_or(0, |m| m.len().min(limits.single_file_cap()));
        let before = held.fetch_add(estimate, Ordering::SeqCst);
        if before > 0 && before + estimate > SCAN_BYTE_BUDGET {
            held.fetch_sub(estimate, Ordering::SeqCst);
            return None;
        }
        if let Ok(mut reached) = reached.lock() {
            reached[*index] = true;
        }
        let inspected = inspect_one(deploy, limits, state, tenant);
        // A clean tenant holds hashes only: give its reservation back.
        let kept = inspected.as_ref().and_then(|i| i.result.as_ref().ok()).map_or(0, |(s, _)| s.held_bytes());
        held.fetch_sub(estimate.saturating_sub(kept), Ordering::SeqCst);
        inspected
    });
    found.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    let reached = reached.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let not_reached = names.iter().zip(reached).filter(|(_, r)| !r).map(|(n, _)| n.clone()).collect();
    (found, not_reached)
}

/// Runs `work` over `items` on one worker per core (each worker taking at
/// least `min_per_worker` items, so small batches stay on this thread) and
/// collects what it returns, in no particular order.
fn in_parallel<T: Sync, R: Send>(items: &[T], min_per_worker: usize, work: impl Fn(&T) -> Option<R> + Sync) -> Vec<R> {
    let workers =
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().div_ceil(min_per_worker)).max(1);
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let worker = || {
        while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Some(result) = work(item)
                && let Ok(mut found) = found.lock()
            {
                found.push(result);
            }
        }
    };
    if workers == 1 {
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(worker);
            }
        });
    }
    found.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn inspect_one(deploy: &Path, limits: &ReadLimits, state: &State, tenant: &str) -> Option<Inspected> {
    let path = deploy.join(tenant);
    let result = TenantSnapshot::take(&path, limits).map(|mut snapshot| {
        let items = compare(tenant, state.tenants.get(tenant).map(expected), &snapshot);
        if items.is_empty() {
            snapshot.drop_bytes();
        }
        (snapshot, items)
    });
    match result {
        Ok((_, ref items)) if items.is_empty() => None,
        result => Some(Inspected { tenant: tenant.to_string(), result }),
    }
}

/// The start-up check of the state against the store and the trust store.
/// Byte-level failures (a store entry that no longer hashes to its name, a
/// signature that no longer matches bytes it once verified) mean the state
/// cannot be trusted; trust-level ones (a key revoked or rotated out since,
/// an approval that expired) only mean that version could not be accepted
/// today, and are logged.
fn check_integrity(state: &State, store: &Store, trust: &TrustStore, limits: &ReadLimits) -> Result<(), StateError> {
    let now = time::OffsetDateTime::now_utc();
    let tenants: Vec<(&String, &TenantRecord)> = state.tenants.iter().collect();
    // As for scans: this re-reads every verified bundle.
    let mut failures = in_parallel(&tenants, 16, |(tenant, record)| {
        check_tenant_integrity(tenant, record, store, trust, limits, now).err().map(|e| (tenant.to_string(), e))
    });
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    match failures.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

fn check_tenant_integrity(
    tenant: &str,
    record: &TenantRecord,
    store: &Store,
    trust: &TrustStore,
    limits: &ReadLimits,
    now: time::OffsetDateTime,
) -> Result<(), StateError> {
    let inconsistent = |reason: String| StateError::Inconsistent { tenant: tenant.to_string(), reason };
    let files = store.get(&record.digest, limits).map_err(|e| inconsistent(e.to_string()))?;
    if files.records() != record.files {
        return Err(inconsistent(format!("store entry {} does not hold the recorded files", record.digest)));
    }
    let bytes =
        files.to_bundle_bytes(limits).map_err(|e| inconsistent(format!("stored bundle {}: {e}", record.digest)))?;
    let manifest_bytes = bytes.manifest.clone();
    let manifest = match verify_bundle(bytes, trust, now) {
        Ok(verified) => {
            if verified.manifest_sha256() != record.manifest_sha256 {
                return Err(inconsistent("the stored manifest does not have the recorded hash".into()));
            }
            verified.manifest().clone()
        }
        Err(
            e @ (VerifyError::Expired { .. }
            | VerifyError::RevokedKey { .. }
            | VerifyError::UntrustedKey { .. }
            | VerifyError::ThresholdNotMet { .. }
            | VerifyError::KeyNotAllowedForTenant { .. }
            | VerifyError::LogKeyCannotApprove { .. }),
        ) => {
            tracing::warn!(tenant, version = record.version, error = %e, "the last verified version would not be accepted today");
            signer::manifest::Manifest::from_bytes(&manifest_bytes).map_err(|e| inconsistent(e.to_string()))?
        }
        Err(e) => return Err(inconsistent(format!("stored bundle {} fails verification: {e}", record.digest))),
    };
    if manifest.version != record.version || manifest.name != *tenant {
        return Err(inconsistent(format!(
            "stored manifest is {} v{}, the state says v{}",
            manifest.name, manifest.version, record.version
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;
    use std::sync::Arc;

    type Seen = Arc<Mutex<Vec<GuardianEvent>>>;

    fn open(kit: &Kit, mode: RepairMode) -> Result<(Guardian, Seen), GuardianError> {
        let seen: Seen = Arc::default();
        let sink = Arc::clone(&seen);
        let options = GuardianOptions {
            deploy_dir: kit.deploy(),
            trust_dir: kit.trust(),
            state_dir: kit.state(),
            audit: AuditOptions {
                log: kit.root.join("audit/audit.log"),
                checkpoint: None,
                host_key: Some(kit.root.join("audit/host.key")),
                origin: "test/node".into(),
                tiles_dir: None,
            },
            admission: Admission::AcceptSigned,
            limits: ReadLimits::default(),
            test_hooks: TestHooks::default(),
        };
        let guardian =
            Guardian::open(options, mode, Box::new(move |e: &GuardianEvent| sink.lock().unwrap().push(e.clone())))?;
        Ok((guardian, seen))
    }

    fn kinds(seen: &Seen) -> Vec<(String, Option<String>, Option<String>)> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|e| (e.kind.to_string(), e.tenant().map(str::to_string), e.reason_code().map(str::to_string)))
            .collect()
    }

    fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let snap = TenantSnapshot::take(dir, &ReadLimits::default()).unwrap();
        snap.entries().unwrap().iter().filter_map(|(k, e)| e.bytes().map(|b| (k.clone(), b.to_vec()))).collect()
    }

    #[test]
    fn first_run_trusts_signed_bundles_and_quarantines_the_rest() {
        let kit = Kit::new("threshold = 1\n");
        kit.deploy_bundle("alpha", 1, &[0]);
        kit.deploy_bundle("beta", 1, &[]);
        let (mut g, seen) = open(&kit, RepairMode::Repair).unwrap();
        let report = g.scan().unwrap();
        assert!(report.drift_found());
        let actions: Vec<_> =
            report.outcomes.iter().map(|o| (o.tenant.as_str(), o.action, o.reason_code.as_deref())).collect();
        assert_eq!(actions, vec![("alpha", Action::Trusted, None), ("beta", Action::Quarantined, Some("unsigned"))]);
        assert!(!kit.deploy().join("beta").exists());
        assert_eq!(fs::read_dir(kit.state().join("quarantine")).unwrap().count(), 1);
        let k = kinds(&seen);
        assert!(k.contains(&("module.trusted".into(), Some("alpha".into()), None)), "{k:?}");
        assert!(k.contains(&("drift.quarantined".into(), Some("beta".into()), Some("unsigned".into()))), "{k:?}");
        assert!(!g.scan().unwrap().drift_found());
        drop(g);
        let (g, _) = open(&kit, RepairMode::Repair).unwrap();
        assert_eq!(g.state().tenants["alpha"].floor, 1);
    }

    #[test]
    fn a_rollback_puts_back_exactly_the_verified_files() {
        let kit = Kit::new("threshold = 1\n");
        let alpha = kit.deploy_bundle("alpha", 1, &[0]);
        let original = tree(&alpha);
        let (mut g, seen) = open(&kit, RepairMode::Repair).unwrap();
        g.scan().unwrap();
        fs::write(alpha.join("module.wasm"), b"\0asm evil").unwrap();
        fs::write(alpha.join("signatures/extra.minisig"), b"junk").unwrap();
        let report = g.scan().unwrap();
        assert_eq!(report.outcomes[0].action, Action::RolledBack);
        assert_eq!(report.outcomes[0].reason_code.as_deref(), Some("malformed_signature"));
        assert_eq!(tree(&alpha), original);
        let events = seen.lock().unwrap();
        let done = events.iter().find(|e| e.kind == events::ROLLBACK_COMPLETED).unwrap();
        assert_eq!(done.data["reverified"], true);
        let kept = PathBuf::from(done.data["quarantined_to"].as_str().unwrap());
        assert_eq!(fs::read(kept.join("module.wasm")).unwrap(), b"\0asm evil");
    }

    #[test]
    fn report_only_leaves_the_files_and_layout_drift_is_named() {
        let kit = Kit::new("threshold = 1\n");
        let alpha = kit.deploy_bundle("alpha", 1, &[0]);
        let (mut g, _) = open(&kit, RepairMode::Repair).unwrap();
        g.scan().unwrap();
        drop(g);
        fs::write(alpha.join("README"), b"hi").unwrap();
        let drifted = tree(&alpha);
        let (mut g, seen) = open(&kit, RepairMode::ReportOnly).unwrap();
        let report = g.scan().unwrap();
        assert_eq!(report.outcomes[0].action, Action::DriftReported);
        assert_eq!(report.outcomes[0].reason_code.as_deref(), Some("layout"));
        // Not one file added, removed or rewritten, the README included.
        assert_eq!(tree(&alpha), drifted);
        assert_eq!(fs::read_dir(kit.deploy()).unwrap().count(), 1, "nothing staged beside the tenant");
        let events = seen.lock().unwrap();
        assert_eq!(events[0].data["kind"], "file_added");
        assert_eq!(events[0].data["path"], "alpha/README");
    }

    #[test]
    fn a_corrupt_store_entry_or_state_file_is_reported_not_trusted() {
        let kit = Kit::new("threshold = 1\n");
        kit.deploy_bundle("alpha", 1, &[0]);
        let (mut g, _) = open(&kit, RepairMode::Repair).unwrap();
        g.scan().unwrap();
        let digest = g.state().tenants["alpha"].digest.clone();
        drop(g);
        let stored = kit.state().join("store").join(&digest).join("module.wasm");
        let good = fs::read(&stored).unwrap();
        fs::write(&stored, b"\0asm other").unwrap();
        let err = open(&kit, RepairMode::Repair).unwrap_err();
        assert!(matches!(err, GuardianError::State(StateError::Inconsistent { .. })), "{err}");
        fs::write(&stored, good).unwrap();
        let state = kit.state().join("state.json");
        let text = fs::read_to_string(&state).unwrap().replace("\"floor\":1", "\"floor\":0");
        fs::write(&state, text).unwrap();
        let err = open(&kit, RepairMode::Repair).unwrap_err();
        assert!(matches!(err, GuardianError::State(StateError::HashMismatch { .. })), "{err}");
    }

    #[test]
    fn leftovers_of_an_interrupted_rollback_are_quarantined_at_start() {
        let kit = Kit::new("threshold = 1\n");
        kit.deploy_bundle("alpha", 1, &[0]);
        let (mut g, _) = open(&kit, RepairMode::Repair).unwrap();
        g.scan().unwrap();
        drop(g);
        let staging = kit.deploy().join(".guardian-restore-alpha.0123456789abcdef");
        fs::create_dir(&staging).unwrap();
        let (_, seen) = open(&kit, RepairMode::Repair).unwrap();
        assert!(!staging.exists());
        assert_eq!(kinds(&seen), vec![("rollback.recovered".into(), Some("alpha".into()), None)]);
    }

    #[test]
    fn state_inside_the_deploy_tree_is_refused() {
        let kit = Kit::new("threshold = 1\n");
        let seen: Observer = Box::new(|_| {});
        let options = GuardianOptions {
            deploy_dir: kit.deploy(),
            trust_dir: kit.trust(),
            state_dir: kit.deploy().join(".state"),
            audit: AuditOptions {
                log: kit.root.join("a.log"),
                checkpoint: None,
                host_key: None,
                origin: "o".into(),
                tiles_dir: None,
            },
            admission: Admission::AcceptSigned,
            limits: ReadLimits::default(),
            test_hooks: TestHooks::default(),
        };
        assert!(matches!(Guardian::open(options, RepairMode::Repair, seen), Err(GuardianError::Overlap { .. })));
    }

    #[test]
    fn a_scan_holds_at_most_its_byte_budget_of_drifted_tenants() {
        // Eight junk tenants of 12 MiB each: 96 MiB if held at once.
        let kit = Kit::new("threshold = 1\n");
        for i in 0..8 {
            let dir = kit.deploy().join(format!("junk-{i}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("module.wasm"), vec![i as u8; 12 << 20]).unwrap();
        }
        let names: Vec<String> = (0..8).map(|i| format!("junk-{i}")).collect();
        let (found, not_reached) = inspect(&kit.deploy(), &ReadLimits::default(), &State::default(), &names);
        let held: u64 = found.iter().filter_map(|f| f.result.as_ref().ok()).map(|(s, _)| s.held_bytes()).sum();
        assert!(!not_reached.is_empty(), "the budget stopped the reading");
        // Each worker may finish the snapshot it started past the budget.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        assert!(held <= SCAN_BYTE_BUDGET + workers * (12 << 20), "held {held}");
        assert_eq!(found.len() + not_reached.len(), 8);
        // A whole scan still gets to every one of them.
        let (mut g, _) = open(&kit, RepairMode::Repair).unwrap();
        let report = g.scan().unwrap();
        assert_eq!(report.outcomes.iter().filter(|o| o.action == Action::Quarantined).count(), 8);
    }
}
