//! The daemon: file events, periodic full rescans, settling, and a clean stop.
//!
//! The deploy directory is watched recursively with `notify` (inotify on
//! Linux), and the audit log's directory non-recursively. Events are only a
//! hint of where to look: a tenant touched by an event is checked once it
//! has been quiet for the settle time (so a bundle deployed file by file is
//! judged whole), or at the latest ten settle times after its first event
//! (so a stream of events cannot postpone a check for ever). Because
//! inotify drops events when its queue overflows, misses writes through a
//! shared mapping, and follows renamed directories only as well as user
//! space can, every tenant is also checked in full every rescan interval,
//! and at once after an overflow or a watcher error.
//!
//! The loop blocks on one channel with a timeout set to the next thing due,
//! so it never spins. The channel is bounded and the watcher thread never
//! waits on it: reads (the guardian's own scans among them) are dropped at
//! once, and when the channel is full an event is dropped and an overflow
//! flag set, which the loop turns into a full rescan, exactly like a kernel
//! queue overflow. Memory stays bounded, and the watcher thread can never
//! block on a loop that is itself waiting for the watcher (as `watch()`
//! does while it adds thousands of watches).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use signer::fsutil::{FileMode, atomic_write};

use crate::events;
use crate::guardian::{Guardian, GuardianError, ScanReport};
use crate::restore::tenant_of_staging;

/// Capacity of the channel between the watcher thread and the loop.
pub const EVENT_QUEUE: usize = 4096;

/// How the daemon paces itself.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between full rescans.
    pub rescan_interval: Duration,
    /// Quiet time a tenant needs after a file event before it is checked.
    pub settle: Duration,
    /// Written atomically once the initial verification is done.
    pub ready_file: Option<PathBuf>,
    /// Applied after every full rescan (not the first), when set.
    pub retention: Option<crate::gc::Retention>,
}

/// Counters reported when the daemon stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchSummary {
    pub full_scans: u64,
    pub event_checks: u64,
    pub overflows: u64,
}

enum Wake {
    Fs(notify::Result<notify::Event>),
    Reload,
    Stop,
}

/// Flags the watcher thread and the stop handle raise for the loop.
#[derive(Debug, Default)]
struct Flags {
    overflowed: AtomicBool,
    reload: AtomicBool,
    stop: AtomicBool,
}

/// Stops a running [`Daemon`] from another thread (a signal handler thread).
#[derive(Debug, Clone)]
pub struct StopHandle {
    tx: SyncSender<Wake>,
    flags: Arc<Flags>,
}

impl StopHandle {
    /// Asks the daemon to reload its trust store (SIGHUP): a store that does
    /// not load is refused and the old one kept; either way it is recorded.
    pub fn reload(&self) {
        self.flags.reload.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Wake::Reload);
    }

    pub fn stop(&self) {
        self.flags.stop.store(true, Ordering::SeqCst);
        // Only a wake-up: a full channel wakes the loop anyway, and a closed
        // one means the daemon has already stopped.
        let _ = self.tx.try_send(Wake::Stop);
    }
}

/// Events that change nothing: opening, reading and closing unwritten files.
fn is_read(event: &notify::Result<notify::Event>) -> bool {
    matches!(event, Ok(e) if matches!(e.kind, EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read))))
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wake::Fs(_) => f.write_str("Fs"),
            Wake::Reload => f.write_str("Reload"),
            Wake::Stop => f.write_str("Stop"),
        }
    }
}

/// What the file events asked for so far.
#[derive(Debug, Default)]
struct Pending {
    /// Tenant → (first event, last event).
    tenants: BTreeMap<String, (Instant, Instant)>,
    audit: Option<Instant>,
    full_scan: bool,
}

impl Pending {
    fn due_at(first: Instant, last: Instant, settle: Duration) -> Instant {
        (last + settle).min(first + settle * 10)
    }

    fn next_deadline(&self, settle: Duration) -> Option<Instant> {
        let tenants = self.tenants.values().map(|&(first, last)| Self::due_at(first, last, settle));
        tenants.chain(self.audit.map(|at| at + settle)).min()
    }

    fn take_due(&mut self, now: Instant, settle: Duration) -> BTreeMap<String, Option<Instant>> {
        let due: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, (first, last))| Self::due_at(*first, *last, settle) <= now)
            .map(|(t, _)| t.clone())
            .collect();
        due.into_iter().filter_map(|t| self.tenants.remove(&t).map(|(first, _)| (t, Some(first)))).collect()
    }
}

/// The watching guardian.
pub struct Daemon {
    guardian: Guardian,
    options: WatchOptions,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
    flags: Arc<Flags>,
    deploy: PathBuf,
    audit_dir: PathBuf,
    audit_names: Vec<std::ffi::OsString>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("guardian", &self.guardian)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn absolute(path: &Path) -> Result<PathBuf, GuardianError> {
    std::fs::canonicalize(path).map_err(|source| GuardianError::Io { path: path.to_path_buf(), source })
}

impl Daemon {
    pub fn new(guardian: Guardian, options: WatchOptions) -> Result<Self, GuardianError> {
        let (tx, rx) = sync_channel(EVENT_QUEUE);
        let deploy = absolute(guardian.deploy_dir())?;
        let log = guardian.audit_log().to_path_buf();
        let audit_dir = absolute(log.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
        let checkpoint = audit::default_checkpoint_path(&log);
        let audit_names =
            [log.file_name(), checkpoint.file_name()].into_iter().flatten().map(ToOwned::to_owned).collect();
        Ok(Self { guardian, options, tx, rx, flags: Arc::default(), deploy, audit_dir, audit_names })
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { tx: self.tx.clone(), flags: Arc::clone(&self.flags) }
    }

    /// Runs until stopped: initial verification, readiness, then the loop.
    pub fn run(mut self) -> Result<WatchSummary, GuardianError> {
        let tx = self.tx.clone();
        let flags = Arc::clone(&self.flags);
        let mut watcher = notify::recommended_watcher(move |event| {
            // Never blocks; see the module docs.
            if !is_read(&event) && tx.try_send(Wake::Fs(event)).is_err() {
                flags.overflowed.store(true, Ordering::SeqCst);
            }
        })
        .map_err(|source| GuardianError::Watch { path: self.deploy.clone(), source })?;
        // Watch before the first scan, so that nothing changed during it goes unnoticed.
        watcher
            .watch(&self.deploy, RecursiveMode::Recursive)
            .map_err(|source| GuardianError::Watch { path: self.deploy.clone(), source })?;
        watcher
            .watch(&self.audit_dir, RecursiveMode::NonRecursive)
            .map_err(|source| GuardianError::Watch { path: self.audit_dir.clone(), source })?;

        let mut summary = WatchSummary { full_scans: 1, ..WatchSummary::default() };
        let report = self.guardian.scan()?;
        log_report("initial verification", &report);
        let tenants = self.guardian.state().tenants.len();
        if let Some(path) = &self.options.ready_file {
            let text = serde_json::json!({ "pid": std::process::id(), "tenants": tenants }).to_string();
            atomic_write(path, text.as_bytes(), FileMode::Public)
                .map_err(|source| GuardianError::Io { path: path.clone(), source })?;
        }
        tracing::info!(tenants, deploy = %self.deploy.display(), "ready: initial verification done, watching");
        self.guardian.record(vec![events::guardian_started(tenants)])?;

        let settle = self.options.settle;
        let mut pending = Pending::default();
        let mut next_rescan = Instant::now() + self.options.rescan_interval;
        'run: loop {
            if self.flags.stop.load(Ordering::SeqCst) {
                break 'run;
            }
            let deadline = pending.next_deadline(settle).map_or(next_rescan, |d| d.min(next_rescan));
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break 'run,
                Ok(Wake::Reload) => {}
                Ok(Wake::Fs(event)) => {
                    self.note(event, &mut pending, &mut summary);
                    // Take what else is queued before acting, so a burst is handled once.
                    for _ in 0..EVENT_QUEUE {
                        match self.rx.try_recv() {
                            Ok(Wake::Fs(event)) => self.note(event, &mut pending, &mut summary),
                            Ok(Wake::Stop) => break 'run,
                            Ok(Wake::Reload) => {}
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.flags.stop.load(Ordering::SeqCst) {
                break 'run;
            }
            if self.flags.reload.swap(false, Ordering::SeqCst) {
                // A new trust store applies to every tenant at once: with a
                // key revoked, bundles it approved are no longer valid.
                if self.guardian.reload_trust_on_request()? {
                    pending.full_scan = true;
                }
            }
            if self.flags.overflowed.swap(false, Ordering::SeqCst) {
                summary.overflows += 1;
                tracing::warn!("file event queue overflowed: rescanning everything");
                pending.full_scan = true;
            }
            let now = Instant::now();
            if pending.full_scan || now >= next_rescan {
                summary.full_scans += 1;
                pending = Pending::default();
                match self.guardian.scan() {
                    Ok(report) => log_report("full rescan", &report),
                    Err(e) => tracing::error!(error = %e, "full rescan failed"),
                }
                if let Some(retention) = &self.options.retention
                    && let Err(e) = self.guardian.gc(retention)
                {
                    tracing::error!(error = %e, "retention pass failed");
                }
                next_rescan = Instant::now() + self.options.rescan_interval;
                continue;
            }
            let due = pending.take_due(now, settle);
            if !due.is_empty() {
                summary.event_checks += 1;
                match self.guardian.check_tenants(&due) {
                    Ok(report) => log_report("event check", &report),
                    Err(e) => tracing::error!(error = %e, "check failed"),
                }
            }
            if pending.audit.is_some_and(|at| at + settle <= now) {
                pending.audit = None;
                if let Err(e) = self.guardian.check_audit() {
                    tracing::error!(error = %e, "audit check failed");
                }
            }
        }
        self.guardian.record(vec![events::guardian_stopped()])?;
        drop(watcher);
        tracing::info!(
            full_scans = summary.full_scans,
            event_checks = summary.event_checks,
            overflows = summary.overflows,
            "guardian stopped"
        );
        Ok(summary)
    }

    fn note(&self, event: notify::Result<notify::Event>, pending: &mut Pending, summary: &mut WatchSummary) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error: rescanning everything");
                pending.full_scan = true;
                return;
            }
        };
        if event.need_rescan() {
            summary.overflows += 1;
            tracing::warn!("kernel file event queue overflowed: rescanning everything");
            pending.full_scan = true;
            return;
        }
        let now = Instant::now();
        for path in &event.paths {
            if let Ok(rel) = path.strip_prefix(&self.deploy) {
                match rel.components().next() {
                    None => pending.full_scan = true,
                    Some(Component::Normal(name)) => {
                        let name = name.to_string_lossy();
                        // Events inside a staging directory concern its tenant: after the
                        // exchange the watcher may still name the new bundle by the old path.
                        let tenant = match tenant_of_staging(&name) {
                            Some(tenant) => tenant.to_string(),
                            None if name.starts_with('.') => continue,
                            None => name.into_owned(),
                        };
                        pending.tenants.entry(tenant).and_modify(|(_, last)| *last = now).or_insert((now, now));
                    }
                    Some(_) => pending.full_scan = true,
                }
            } else if path.parent() == Some(self.audit_dir.as_path())
                && path.file_name().is_some_and(|n| self.audit_names.iter().any(|a| a == n))
            {
                pending.audit.get_or_insert(now);
            }
        }
    }
}

fn log_report(what: &str, report: &ScanReport) {
    if report.outcomes.is_empty() && report.audit_tampered.is_none() {
        tracing::debug!(checked = report.checked, "{what}: clean");
    } else {
        tracing::info!(
            checked = report.checked,
            not_clean = report.outcomes.len(),
            audit_tampered = report.audit_tampered.is_some(),
            "{what} done"
        );
    }
}
