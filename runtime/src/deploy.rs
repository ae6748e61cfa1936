//! Running every tenant of a deploy directory at once.
//!
//! ```text
//! DEPLOY/
//!   alpha/  module.wasm  manifest.json  signatures/…
//!   beta/   …
//! ```
//!
//! Each subdirectory is one tenant's bundle and must be signed for the tenant
//! it is named after. Tenants are prepared in parallel (read, verify, narrow,
//! validate, compile or load from cache, link into an `InstancePre`), then
//! checked against each other so that no two tenants share a host directory,
//! then run in parallel, each in its own store with its own preopens. Every
//! failure is confined to its tenant: refusals, traps and limits are per-tenant
//! results, and even a panic in one tenant's host code becomes that tenant's
//! result instead of ending the others.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::Linker;

use crate::engine::NightEngine;
use crate::exec::HostState;
use crate::pipeline::{ExecOptions, ExecReport, ReadyBundle, Refusal, prepare_bundle, run_ready};
use crate::policy::PolicyError;

/// Why one tenant produced no run report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantFailure {
    #[error(transparent)]
    Refused(Refusal),
    #[error("host code panicked while handling this tenant: {message}")]
    Panicked { message: String },
    /// Tenant names are UTF-8 everywhere (manifests, trust store, state): a
    /// directory whose name is not cannot be matched against any of them.
    #[error("tenant directory name {name} is not valid UTF-8")]
    NameNotUtf8 { name: String },
}

impl TenantFailure {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            TenantFailure::Refused(refusal) => refusal.reason_code(),
            TenantFailure::Panicked { .. } => "host_panic",
            TenantFailure::NameNotUtf8 { .. } => "tenant_name_not_utf8",
        }
    }

    /// The step that failed, as in [`Refusal::stage`]; `host` for a panic.
    pub fn stage(&self) -> &'static str {
        match self {
            TenantFailure::Refused(refusal) => refusal.stage(),
            TenantFailure::Panicked { .. } => "host",
            TenantFailure::NameNotUtf8 { .. } => "read",
        }
    }
}

/// One tenant's result.
#[derive(Debug)]
pub struct TenantResult {
    /// The tenant directory's name (escaped if it is not UTF-8).
    pub directory: String,
    pub bundle: PathBuf,
    pub result: Result<ExecReport, TenantFailure>,
}

/// The results of a deploy directory, in directory-name order.
#[derive(Debug)]
pub struct DeployReport {
    pub tenants: Vec<TenantResult>,
}

/// Why the deploy directory itself could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    #[error("cannot list deploy directory {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },
}

/// A tenant directory of a deploy directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TenantDir {
    /// The directory's name, or its escaped form when it is not UTF-8.
    pub name: Result<String, String>,
    pub path: PathBuf,
}

impl TenantDir {
    /// The name to show: the tenant name, or the escaped non-UTF-8 name.
    pub fn display_name(&self) -> &str {
        match &self.name {
            Ok(name) | Err(name) => name,
        }
    }
}

/// The tenant bundles in `deploy_dir`: every subdirectory whose name does not
/// start with `.`, sorted by name. A name that is not UTF-8 is listed (so that
/// it is refused by name, not silently skipped) with its escaped form.
pub fn list_bundles(deploy_dir: &Path) -> Result<Vec<TenantDir>, DeployError> {
    let list_error = |source| DeployError::List { path: deploy_dir.to_path_buf(), source };
    let mut bundles = Vec::new();
    for entry in std::fs::read_dir(deploy_dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let raw = entry.file_name();
        // `file_type` does not follow symlinks: a linked tenant directory could
        // point anywhere, so it is not picked up.
        if raw.as_encoded_bytes().starts_with(b".") || !entry.file_type().map_err(list_error)?.is_dir() {
            continue;
        }
        let name = raw.into_string().map_err(|raw| signer::text::escape_os(&raw));
        bundles.push(TenantDir { name, path: entry.path() });
    }
    bundles.sort();
    Ok(bundles)
}

/// Every tenant of a deploy directory, prepared (read, verified, narrowed,
/// validated, compiled, linked) but not yet run: the caller can record that
/// the runs start before any guest does.
#[derive(Debug)]
pub struct PreparedDeploy {
    bundles: Vec<TenantDir>,
    prepared: Vec<Result<ReadyBundle, TenantFailure>>,
}

impl PreparedDeploy {
    /// The tenants that will run, with their bundle paths.
    pub fn ready(&self) -> impl Iterator<Item = (&Path, &ReadyBundle)> {
        self.bundles.iter().zip(&self.prepared).filter_map(|(dir, p)| p.as_ref().ok().map(|r| (dir.path.as_path(), r)))
    }

    /// Runs every prepared tenant with at most `parallel` in flight at once.
    pub fn run(
        self,
        engine: &NightEngine,
        args: &[String],
        options: &ExecOptions<'_>,
        parallel: usize,
    ) -> DeployReport {
        let PreparedDeploy { bundles, prepared } = self;
        let jobs: Vec<(usize, &ReadyBundle)> =
            prepared.iter().enumerate().filter_map(|(i, p)| p.as_ref().ok().map(|ready| (i, ready))).collect();
        let ran = parallel_map(&jobs, parallel, |(_, ready)| {
            run_ready(engine, ready, args, options.determinism).map_err(TenantFailure::Refused)
        });

        let mut ran_by_index: Vec<Option<Result<ExecReport, TenantFailure>>> = prepared.iter().map(|_| None).collect();
        for ((index, _), result) in jobs.iter().zip(ran) {
            ran_by_index[*index] = Some(result);
        }
        let tenants = bundles
            .into_iter()
            .zip(prepared)
            .zip(ran_by_index)
            .map(|((dir, prepared), ran)| {
                let result = match (prepared, ran) {
                    (Err(failure), _) => Err(failure),
                    (Ok(_), Some(result)) => result,
                    // Every prepared tenant was handed to the run phase.
                    (Ok(_), None) => {
                        Err(TenantFailure::Panicked { message: "tenant was prepared but never run".into() })
                    }
                };
                TenantResult { directory: dir.display_name().to_string(), bundle: dir.path, result }
            })
            .collect();
        DeployReport { tenants }
    }
}

/// Prepares every bundle in `deploy_dir`, at most `parallel` at once.
pub fn prepare_all(
    engine: &NightEngine,
    linker: &Linker<HostState>,
    deploy_dir: &Path,
    options: &ExecOptions<'_>,
    parallel: usize,
) -> Result<PreparedDeploy, DeployError> {
    let bundles = list_bundles(deploy_dir)?;
    let prepared: Vec<Result<ReadyBundle, TenantFailure>> = parallel_map(&bundles, parallel, |dir| {
        let name = dir.name.as_ref().map_err(|name| TenantFailure::NameNotUtf8 { name: name.clone() })?;
        let options = ExecOptions { expected_tenant: Some(name.as_str()), ..options.clone() };
        prepare_bundle(engine, linker, &dir.path, &options).map_err(TenantFailure::Refused)
    });
    let prepared = refuse_shared_directories(&bundles, prepared);
    Ok(PreparedDeploy { bundles, prepared })
}

/// Prepares and runs every bundle in `deploy_dir` with at most `parallel`
/// tenants in flight at once.
pub fn run_all(
    engine: &NightEngine,
    linker: &Linker<HostState>,
    deploy_dir: &Path,
    args: &[String],
    options: &ExecOptions<'_>,
    parallel: usize,
) -> Result<DeployReport, DeployError> {
    Ok(prepare_all(engine, linker, deploy_dir, options, parallel)?.run(engine, args, options, parallel))
}

/// Refuses every tenant whose host directory is, contains or lies inside a
/// host directory of an earlier tenant: isolation between tenants must not
/// depend on each operator mapping disjoint trees by hand.
fn refuse_shared_directories(
    bundles: &[TenantDir],
    prepared: Vec<Result<ReadyBundle, TenantFailure>>,
) -> Vec<Result<ReadyBundle, TenantFailure>> {
    let mut claimed: Vec<(String, PathBuf)> = Vec::new();
    let mut out = Vec::with_capacity(prepared.len());
    for (dir, result) in bundles.iter().zip(prepared) {
        let name = dir.display_name();
        let result = result.and_then(|ready| {
            for preopen in &ready.policy.preopens {
                if let Some((other, _)) =
                    claimed.iter().find(|(_, path)| path.starts_with(&preopen.host) || preopen.host.starts_with(path))
                {
                    return Err(TenantFailure::Refused(Refusal::Policy(PolicyError::SharedWithTenant {
                        guest: preopen.guest.clone(),
                        path: preopen.host.clone(),
                        other: other.clone(),
                    })));
                }
            }
            Ok(ready)
        });
        if let Ok(ready) = &result {
            claimed.extend(ready.policy.preopens.iter().map(|p| (name.to_string(), p.host.clone())));
        }
        out.push(result);
    }
    out
}

/// Applies `work` to every item on up to `parallel` threads, keeping order.
/// A panic in `work` becomes that item's [`TenantFailure::Panicked`].
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    work: impl Fn(&T) -> Result<R, TenantFailure> + Sync,
) -> Vec<Result<R, TenantFailure>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, TenantFailure>>>> = Mutex::new(items.iter().map(|_| None).collect());
    let threads = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = catch_unwind(AssertUnwindSafe(|| work(item))).unwrap_or_else(|payload| {
                        let message = payload
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "non-string panic payload".to_string());
                        Err(TenantFailure::Panicked { message })
                    });
                    let mut guard = results.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    guard[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TenantFailure::Panicked { message: "worker thread ended early".into() })))
        .collect()
}
