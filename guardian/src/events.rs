//! Every event the guardian records, and the single place where it writes to
//! the audit log.
//!
//! Each event kind has one builder function here, so that the audit log, the
//! `--json` output of the binary and `guardian status` all see the same
//! fields. [`Recorder`] hands each event to an observer (the binary prints
//! it), keeps a short history for the state file, and appends it to the audit
//! log, checking the log against its verified mirror before every append so
//! that nothing is ever built on top of tampered history.
//!
//! Kinds written (`data` fields in brackets):
//! - `module.trusted`: a tenant's first verified version, on the first run or
//!   when a new tenant appears (`tenant`, `version`, `digest`, hashes, `signers`, `how`).
//! - `module.upgraded`: a valid signed upgrade was accepted (`from_version`,
//!   `to_version`, digests, `changes`).
//! - `drift.detected`: deployed bytes or layout differ and were not accepted
//!   (`path`, `kind`, `expected`, `found` of the first change, `changes`,
//!   `reason_code`, `reason`, `action`).
//! - `rollback.completed`: the last verified version is back (`version`,
//!   `digest`, `reason_code`, `quarantined_to`, `reverified`, timings in µs).
//! - `drift.quarantined`: refused with nothing to roll back to (`reason_code`, `quarantined_to`).
//! - `rollback.recovered`: a staging directory left by an interrupted
//!   rollback was quarantined at start-up.
//! - `audit.tampered`: the audit log or checkpoint was changed (`file`,
//!   `reason`, `detail`, `restored`, `quarantined_to`).
//! - `guardian.started`, `guardian.stopped`: the daemon's lifetime.

use std::path::{Path, PathBuf};

use audit::{Actor, AuditError, AuditLog, Event, LogOptions};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::RepairMode;
use crate::audit_mirror::{AuditCheck, AuditMirror, AuditTamper, MirrorError};
use crate::decide::Refusal;
use crate::drift::DriftItem;
use crate::quarantine::Quarantine;
use crate::state::{RecentEvent, RetiredTenant, TenantRecord};

pub const AUDIT_TAMPERED: &str = "audit.tampered";
pub const DRIFT_DETECTED: &str = audit::kinds::DRIFT_DETECTED;
pub const DRIFT_QUARANTINED: &str = "drift.quarantined";
pub const GUARDIAN_STARTED: &str = "guardian.started";
pub const GUARDIAN_STOPPED: &str = "guardian.stopped";
pub const MODULE_TRUSTED: &str = "module.trusted";
pub const MODULE_UPGRADED: &str = audit::kinds::MODULE_UPGRADED;
pub const ROLLBACK_COMPLETED: &str = audit::kinds::ROLLBACK_COMPLETED;
pub const ROLLBACK_RECOVERED: &str = "rollback.recovered";
pub const ROLLBACK_FAILED: &str = "rollback.failed";
pub const TRUST_RELOADED: &str = "trust.reloaded";
pub const GC_COMPLETED: &str = "gc.completed";
pub const TENANT_RETIRED: &str = "tenant.retired";
pub const TRUST_RELOAD_FAILED: &str = "trust.reload_failed";

/// Changes listed per event at most; `changes_total` gives the full count.
pub const MAX_CHANGES_PER_EVENT: usize = 64;

/// One event: its kind, when it happened (RFC 3339 UTC) and its fields, in
/// the shape of an audit log entry: `{"data":{"tenant":"alpha",…},"kind":"drift.detected","time":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardianEvent {
    pub data: Map<String, Value>,
    pub kind: &'static str,
    pub time: String,
}

impl GuardianEvent {
    fn new(kind: &'static str, data: Value) -> Self {
        let data = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self { kind, time: signer::manifest::format_rfc3339(time::OffsetDateTime::now_utc()), data }
    }

    pub fn tenant(&self) -> Option<&str> {
        self.data.get("tenant").and_then(Value::as_str)
    }

    /// A reason code, where the event has one.
    pub fn reason_code(&self) -> Option<&str> {
        self.data.get("reason_code").or_else(|| self.data.get("reason")).and_then(Value::as_str)
    }

    fn recent(&self) -> RecentEvent {
        let summary = ["reason_code", "reason", "version", "to_version", "path"]
            .iter()
            .filter_map(|k| {
                self.data.get(*k).map(|v| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            })
            .collect::<Vec<_>>()
            .join(" ");
        RecentEvent {
            time: self.time.clone(),
            kind: self.kind.to_string(),
            tenant: self.tenant().map(str::to_string),
            summary,
        }
    }
}

/// How a tenant's first version came to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Admitted {
    /// The state was empty: trust on first verification.
    FirstRun,
    /// A new tenant directory appeared with a valid bundle.
    NewTenant,
}

/// What the guardian does about refused drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Nothing verified to restore: the bundle is moved to quarantine.
    Quarantine,
    /// `scan` without `--repair`: reported only.
    Report,
    /// The last verified version is restored.
    Rollback,
}

/// How long each step of a rollback took, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RollbackTimings {
    /// Reading the verified version from the store and writing the staging directory.
    pub stage_us: u64,
    /// The directory exchange.
    pub swap_us: u64,
    /// Moving the refused bundle into quarantine.
    pub quarantine_us: u64,
    /// Reading back and verifying what is now deployed.
    pub reverify_us: u64,
    /// From the check that found the drift to completion.
    pub since_detection_us: u64,
    /// From the first file event about the change to completion, when a file event led here.
    pub since_event_us: Option<u64>,
}

fn record_fields(record: &TenantRecord) -> Value {
    json!({
        "version": record.version,
        "version_label": record.version_label,
        "digest": record.digest,
        "manifest_sha256": record.manifest_sha256,
        "module_sha256": record.module_sha256,
        "signers": record.signers,
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

fn changes(items: &[DriftItem]) -> Value {
    json!(items.iter().take(MAX_CHANGES_PER_EVENT).collect::<Vec<_>>())
}

pub fn module_trusted(tenant: &str, record: &TenantRecord, how: Admitted) -> GuardianEvent {
    GuardianEvent::new(MODULE_TRUSTED, merge(json!({ "tenant": tenant, "how": how }), record_fields(record)))
}

pub fn module_upgraded(tenant: &str, from: &TenantRecord, to: &TenantRecord, items: &[DriftItem]) -> GuardianEvent {
    let data = json!({
        "tenant": tenant,
        "from_version": from.version,
        "from_digest": from.digest,
        "to_version": to.version,
        "changes": changes(items),
        "changes_total": items.len(),
    });
    GuardianEvent::new(MODULE_UPGRADED, merge(data, record_fields(to)))
}

/// `reason_code` is the refusal's code, or `layout` when the verified bytes
/// are intact but files were added or permissions loosened.
pub fn drift_detected(
    tenant: &str,
    items: &[DriftItem],
    refusal: Option<&Refusal>,
    action: DriftAction,
) -> GuardianEvent {
    let first = items.first();
    let data = json!({
        "tenant": tenant,
        "path": first.map(|i| i.path.as_str()),
        "kind": first.map(|i| i.kind.code()),
        "expected": first.and_then(|i| i.expected.as_deref()),
        "found": first.and_then(|i| i.found.as_deref()),
        "changes": changes(items),
        "changes_total": items.len(),
        "reason_code": refusal.map_or("layout", Refusal::reason_code),
        "reason": refusal.map_or_else(|| "verified bytes intact; files added or permissions loosened".to_string(), ToString::to_string),
        "action": action,
    });
    GuardianEvent::new(DRIFT_DETECTED, data)
}

/// `reverify_failure` is `changed_again` when the tenant changed while it was
/// being restored, or the refusal code when the restored version no longer
/// verifies (a key revoked since, an approval expired).
pub fn rollback_completed(
    tenant: &str,
    restored: &TenantRecord,
    reason_code: &str,
    quarantined_to: Option<&Path>,
    reverify_failure: Option<&str>,
    timings: &RollbackTimings,
) -> GuardianEvent {
    let data = json!({
        "tenant": tenant,
        "reason_code": reason_code,
        "quarantined_to": quarantined_to.map(|p| p.display().to_string()),
        "reverified": reverify_failure.is_none(),
        "reverify_failure": reverify_failure,
        "timings": timings,
    });
    GuardianEvent::new(ROLLBACK_COMPLETED, merge(data, record_fields(restored)))
}

pub fn drift_quarantined(tenant: &str, reason_code: &str, quarantined_to: Option<&Path>) -> GuardianEvent {
    let data = json!({
        "tenant": tenant,
        "reason_code": reason_code,
        "quarantined_to": quarantined_to.map(|p| p.display().to_string()),
    });
    GuardianEvent::new(DRIFT_QUARANTINED, data)
}

/// A rollback that could not complete; the drifted tenant was moved to
/// `quarantined_to` (out of service) when that was possible.
pub fn rollback_failed(
    tenant: &str,
    record: &TenantRecord,
    reason_code: &str,
    step: &str,
    error: &str,
    quarantined_to: Option<&Path>,
) -> GuardianEvent {
    let data = json!({
        "tenant": tenant,
        "reason_code": reason_code,
        "to_version": record.version,
        "step": step,
        "error": error,
        "quarantined_to": quarantined_to.map(|p| p.display().to_string()),
        "out_of_service": quarantined_to.is_some(),
    });
    GuardianEvent::new(ROLLBACK_FAILED, data)
}

/// The trust store was reloaded on request (SIGHUP).
pub fn trust_reloaded(trust_dir: &Path, keys: usize) -> GuardianEvent {
    GuardianEvent::new(TRUST_RELOADED, json!({ "trust_dir": trust_dir.display().to_string(), "keys": keys }))
}

/// A requested reload found a trust store that does not load; the old one stays.
pub fn trust_reload_failed(trust_dir: &Path, reason: &str) -> GuardianEvent {
    GuardianEvent::new(
        TRUST_RELOAD_FAILED,
        json!({ "trust_dir": trust_dir.display().to_string(), "reason": reason, "kept_previous": true }),
    )
}

pub fn rollback_recovered(tenant: &str, quarantined_to: &Path) -> GuardianEvent {
    GuardianEvent::new(
        ROLLBACK_RECOVERED,
        json!({ "tenant": tenant, "quarantined_to": quarantined_to.display().to_string() }),
    )
}

pub fn audit_tampered(tamper: &AuditTamper, quarantined: &[PathBuf], restored: bool) -> GuardianEvent {
    let data = json!({
        "file": tamper.file,
        "reason": tamper.reason,
        "detail": tamper.detail,
        "mirror_entries": tamper.mirror_entries,
        "restored": restored,
        "quarantined_to": quarantined.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    GuardianEvent::new(AUDIT_TAMPERED, data)
}

pub fn guardian_started(tenants: usize) -> GuardianEvent {
    GuardianEvent::new(GUARDIAN_STARTED, json!({ "tenants": tenants, "pid": std::process::id() }))
}

/// A retention pass: what it kept and removed (lists capped at 100 names;
/// the counts and bytes cover everything).
pub fn gc_completed(report: &crate::gc::GcReport) -> GuardianEvent {
    let names = |removed: &[crate::gc::Removed]| removed.iter().take(100).map(|r| r.name.clone()).collect::<Vec<_>>();
    GuardianEvent::new(
        GC_COMPLETED,
        json!({
            "keep_versions": report.keep_versions,
            "quarantine_max_age_days": report.quarantine_max_age_days,
            "versions_forgotten": report.versions_forgotten,
            "store_removed": report.store_removed.len(),
            "store_removed_digests": names(&report.store_removed),
            "quarantine_removed": report.quarantine_removed.len(),
            "quarantine_removed_names": names(&report.quarantine_removed),
            "bytes_freed": report.bytes_freed,
            "skipped": report.skipped.iter().take(100).collect::<Vec<_>>(),
        }),
    )
}

/// `guardian retire`: the tenant's floor kept as a tombstone, its deploy
/// directory moved to `quarantined_to` (none when it was gone already).
pub fn tenant_retired(tenant: &str, retired: &RetiredTenant, quarantined_to: Option<&Path>) -> GuardianEvent {
    let data = json!({
        "tenant": tenant,
        "version": retired.version,
        "floor": retired.floor,
        "quarantined_to": quarantined_to.map(|p| p.display().to_string()),
    });
    GuardianEvent::new(TENANT_RETIRED, data)
}

pub fn guardian_stopped() -> GuardianEvent {
    GuardianEvent::new(GUARDIAN_STOPPED, json!({ "pid": std::process::id() }))
}

/// Receives every event as it is recorded.
pub type Observer = Box<dyn FnMut(&GuardianEvent) + Send>;

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    #[error("audit mirror: {0}")]
    Mirror(#[from] MirrorError),
}

/// Where the audit log is and how the guardian writes to it.
#[derive(Debug, Clone)]
pub struct AuditSetup {
    pub log: PathBuf,
    pub checkpoint: PathBuf,
    pub mirror_dir: PathBuf,
    /// Where the log is published as C2SP tlog-tiles, if anywhere.
    pub tiles_dir: Option<PathBuf>,
    /// Signs a checkpoint after every append when present.
    pub signer: Option<audit::CheckpointSigner>,
    /// The key checkpoints are verified with.
    pub trusted_key: Option<ed25519_dalek::VerifyingKey>,
}

/// The observer, the recent history and the audit log, behind one call.
pub struct Recorder {
    setup: AuditSetup,
    log: Option<AuditLog>,
    mirror: AuditMirror,
    quarantine: Quarantine,
    mode: RepairMode,
    observer: Observer,
    recent: Vec<RecentEvent>,
    /// A tampering found and, in report-only mode, left alone: nothing more
    /// is appended on top of it.
    blocked: Option<AuditTamper>,
    /// Every tampering found since [`Recorder::take_findings`] was last called,
    /// including those found while opening or while appending.
    findings: Vec<AuditTamper>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("log", &self.setup.log).field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Opens the mirror (checking the live log against it, and repairing it
    /// in [`RepairMode::Repair`]) and then the log for appending.
    pub fn open(
        setup: AuditSetup,
        quarantine: Quarantine,
        mode: RepairMode,
        observer: Observer,
    ) -> Result<Self, EventsError> {
        if let Some(parent) = setup.log.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| AuditError::Io {
                action: "create",
                path: parent.to_path_buf(),
                source: e,
            })?;
        }
        let mirror = AuditMirror::open(&setup.mirror_dir, &setup.log, &setup.checkpoint, setup.trusted_key)?;
        let mut recorder = Recorder {
            setup,
            log: None,
            mirror,
            quarantine,
            mode,
            observer,
            recent: Vec::new(),
            blocked: None,
            findings: Vec::new(),
        };
        recorder.check_audit()?;
        if recorder.blocked.is_none() {
            recorder.reopen()?;
        }
        Ok(recorder)
    }

    fn reopen(&mut self) -> Result<(), EventsError> {
        self.log = Some(AuditLog::open_with(&self.setup.log, self.log_options())?);
        Ok(())
    }

    fn log_options(&self) -> LogOptions {
        LogOptions {
            checkpoint_signer: self.setup.signer.clone(),
            checkpoint_path: Some(self.setup.checkpoint.clone()),
        }
    }

    /// Audit tampering found since the last call.
    pub fn take_findings(&mut self) -> Vec<AuditTamper> {
        std::mem::take(&mut self.findings)
    }

    /// Events recorded since the last call, for the state's history.
    pub fn take_recent(&mut self) -> Vec<RecentEvent> {
        std::mem::take(&mut self.recent)
    }

    fn observe(&mut self, event: &GuardianEvent) {
        (self.observer)(event);
        self.recent.push(event.recent());
    }

    /// Hands `events` to the observer and appends them to the audit log as
    /// one batch, after checking the log against its mirror.
    pub fn record(&mut self, events: Vec<GuardianEvent>) -> Result<(), EventsError> {
        if events.is_empty() {
            return Ok(());
        }
        for event in &events {
            self.observe(event);
        }
        self.check_audit()?;
        self.append(&events)
    }

    fn append(&mut self, events: &[GuardianEvent]) -> Result<(), EventsError> {
        if self.blocked.is_some() {
            tracing::warn!(count = events.len(), "audit log is tampered and was not repaired; events not appended");
            return Ok(());
        }
        let actor = Actor::on_this_host("guardian");
        let batch: Vec<Event> = events.iter().map(|e| Event::new(e.kind, actor.clone(), e.data.clone())).collect();
        for attempt in 0..2 {
            let appended = match self.log.as_mut() {
                Some(log) => log.append_batch(&batch).map(drop),
                None => {
                    // Opening reads the last line, so it meets tampering too.
                    AuditLog::open_with(&self.setup.log, self.log_options())
                        .and_then(|log| self.log.insert(log).append_batch(&batch).map(drop))
                }
            };
            match appended {
                Ok(()) => break,
                // Changed behind the handle's back: find out how, repair, retry once.
                Err(AuditError::Tampered { .. } | AuditError::LogShrank { .. } | AuditError::CorruptTail { .. })
                    if attempt == 0 =>
                {
                    self.log = None;
                    self.check_audit()?;
                    if self.blocked.is_some() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Our own append extends the mirror.
        self.check_audit()?;
        Ok(())
    }

    /// Refreshes the published tiles, if any, from the log that was just
    /// checked against the mirror. A failure is logged and does not stop the
    /// guardian: the log itself is intact, and the next growth retries.
    fn publish_tiles(&self) {
        let Some(dir) = &self.setup.tiles_dir else { return };
        match audit::tiles::export_tiles(&self.setup.log, &self.setup.checkpoint, dir) {
            Ok(report) => tracing::debug!(size = report.size, hash_tiles = report.hash_tiles, "tiles published"),
            Err(e) => tracing::error!(dir = %dir.display(), reason = e.reason_code(), "cannot publish the tiles: {e}"),
        }
    }

    /// As [`Recorder::check_audit`], comparing every mirrored byte of the
    /// log, not only what was appended: for full scans.
    pub fn check_audit_full(&mut self) -> Result<Option<AuditTamper>, EventsError> {
        self.mirror.require_full_comparison();
        self.check_audit()
    }

    /// Checks the live audit files against the mirror. Tampering is
    /// restored (in repair mode) and recorded as `audit.tampered`.
    pub fn check_audit(&mut self) -> Result<Option<AuditTamper>, EventsError> {
        let tamper = match self.mirror.check()? {
            AuditCheck::Unchanged => return Ok(None),
            AuditCheck::Extended { .. } => {
                self.publish_tiles();
                return Ok(None);
            }
            AuditCheck::Tampered(t) => t,
        };
        tracing::error!(file = ?tamper.file, reason = %tamper.reason, detail = %tamper.detail, "audit log tampered");
        self.findings.push(tamper.clone());
        match self.mode {
            RepairMode::Repair => {
                let quarantined = self.mirror.restore(&tamper, &self.quarantine)?;
                self.log = None;
                let event = audit_tampered(&tamper, &quarantined, true);
                self.observe(&event);
                self.append(std::slice::from_ref(&event))?;
            }
            RepairMode::ReportOnly => {
                if self.blocked.as_ref() != Some(&tamper) {
                    let event = audit_tampered(&tamper, &[], false);
                    self.observe(&event);
                    self.blocked = Some(tamper.clone());
                    self.log = None;
                }
            }
        }
        Ok(Some(tamper))
    }
}
