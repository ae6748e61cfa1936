//! The effective policy: what a guest actually gets, which is the signed
//! capabilities narrowed by the host's policy for that tenant.
//!
//! The signer decides the most a module may ever have; the host may only take
//! away. Every attempt by the host policy to give more than the manifest grants
//! (more fuel, memory, time or output, an environment variable or a directory
//! the manifest does not list, a network address it does not name) is refused
//! rather than silently clamped, because a host policy that says more than the
//! manifest is a configuration mistake somebody should see.
//!
//! Directories are the host's to choose: the manifest names guest paths, and
//! the host maps each to a host directory. A requested guest path without a
//! mapping, or a mapping the manifest did not request, is refused with the
//! guest path named. Host paths are canonicalised (so `..` and symlinks in the
//! host's own configuration are resolved before any check) and must lie inside
//! the tenant's `root` when one is configured. What the guest can reach below a
//! preopen is then confined by wasmtime-wasi's capability-based file system
//! (cap-std): absolute paths, `..` past the preopen and symlinks that point
//! outside it (relative or absolute) all fail inside the guest with `EPERM`,
//! and so do writes under a read-only preopen; the integration tests in
//! `tests/all/contain.rs` prove each case against a real directory tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use signer::config::TenantPolicy;
use signer::fsutil::{ReadCappedError, read_capped};
use signer::manifest::{Capabilities, PreopenMode};

use crate::validate::{Grant, ImportPolicy};

/// Largest `--policy` file accepted.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// A directory the guest sees, backed by a canonical host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedPreopen {
    pub guest: String,
    pub host: PathBuf,
    pub mode: PreopenMode,
}

/// What one run of one tenant is allowed. Built only by [`narrow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub tenant: String,
    /// Instruction budget in fuel units.
    pub fuel: u64,
    /// Linear memory cap in MiB.
    pub memory_mib: u32,
    /// Wall-clock limit for the run.
    pub timeout: Duration,
    /// Cap on each of stdout and stderr, in bytes.
    pub max_output_bytes: u64,
    /// Exactly the variables the guest sees: listed by the manifest and
    /// supplied by the host.
    pub env: BTreeMap<String, String>,
    pub preopens: Vec<GrantedPreopen>,
    pub network: Vec<SocketAddr>,
}

impl EffectivePolicy {
    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize).saturating_mul(1024 * 1024)
    }

    /// Which optional import groups this policy allows.
    pub fn import_policy(&self) -> ImportPolicy {
        ImportPolicy {
            filesystem: if self.preopens.is_empty() { Grant::Denied } else { Grant::Allowed },
            network: if self.network.is_empty() { Grant::Denied } else { Grant::Allowed },
        }
    }
}

/// Why the host policy could not be applied to a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("host policy {field} = {host} would widen the signed {field} = {signed}")]
    Widening { field: &'static str, signed: String, host: String },
    #[error("host policy {field} = {value} is not usable: {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("host supplies environment variable {name}, which the manifest does not list")]
    EnvNotRequested { name: String },
    #[error("manifest requests preopen {guest}, but the host maps no directory to it")]
    UnmappedPreopen { guest: String },
    #[error("host maps a directory to {guest}, which the manifest does not request")]
    UnrequestedMapping { guest: String },
    #[error("host marks {guest} read-only, but the manifest does not request it")]
    UnknownReadOnly { guest: String },
    #[error("host directory {path} for {guest} cannot be used: {source}")]
    HostDirectory { guest: String, path: PathBuf, source: io::Error },
    #[error("host directory {path} for {guest} is not a directory")]
    NotADirectory { guest: String, path: PathBuf },
    #[error("host directory {path} for {guest} is outside the tenant root {root}")]
    OutsideRoot { guest: String, path: PathBuf, root: PathBuf },
    #[error("tenant root {path} cannot be used: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("host directory {path} for {guest} is also mapped for tenant {other}")]
    SharedWithTenant { guest: String, path: PathBuf, other: String },
    #[error(transparent)]
    ReadPolicy(#[from] ReadCappedError),
    #[error("policy file {path} is not valid: {reason}")]
    PolicyFile { path: PathBuf, reason: String },
}

impl PolicyError {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            PolicyError::Widening { .. } => "policy_widening",
            PolicyError::Invalid { .. } => "policy_invalid",
            PolicyError::EnvNotRequested { .. } => "env_not_requested",
            PolicyError::UnmappedPreopen { .. } => "unmapped_preopen",
            PolicyError::UnrequestedMapping { .. } => "unrequested_mapping",
            PolicyError::UnknownReadOnly { .. } => "unknown_read_only",
            PolicyError::HostDirectory { .. } => "host_directory",
            PolicyError::NotADirectory { .. } => "host_directory",
            PolicyError::OutsideRoot { .. } => "outside_tenant_root",
            PolicyError::Root { .. } => "tenant_root",
            PolicyError::SharedWithTenant { .. } => "shared_host_directory",
            PolicyError::ReadPolicy(_) | PolicyError::PolicyFile { .. } => "policy_file",
        }
    }
}

/// Where host policies come from for one invocation: the per-tenant policies
/// of `nightcore.toml`, optionally replaced by a `--policy` file, plus
/// `--dir`/`--env` additions from the command line.
#[derive(Debug, Clone, Default)]
pub struct HostPolicies {
    pub tenants: BTreeMap<String, TenantPolicy>,
    /// When set, used for every tenant instead of the configured one.
    pub replacement: Option<TenantPolicy>,
    /// Guest path → host directory, added on top of the chosen policy.
    pub extra_dirs: BTreeMap<String, PathBuf>,
    /// Variable → value, added on top of the chosen policy.
    pub extra_env: BTreeMap<String, String>,
}

impl HostPolicies {
    /// The host policy that applies to `tenant`. A tenant with no configured
    /// policy gets the empty one: nothing narrowed, no directories, no
    /// environment values.
    pub fn for_tenant(&self, tenant: &str) -> TenantPolicy {
        let mut policy = match &self.replacement {
            Some(policy) => policy.clone(),
            None => self.tenants.get(tenant).cloned().unwrap_or_default(),
        };
        policy.dirs.extend(self.extra_dirs.iter().map(|(g, h)| (g.clone(), h.clone())));
        policy.env.extend(self.extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        policy
    }
}

/// Reads a `--policy` file: one tenant policy in the `[tenants.NAME]` format
/// of `nightcore.toml`, with relative paths resolved against the file's
/// directory.
pub fn load_policy_file(path: &Path) -> Result<TenantPolicy, PolicyError> {
    let invalid = |reason: String| PolicyError::PolicyFile { path: path.to_path_buf(), reason };
    let bytes = read_capped(path, MAX_POLICY_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not valid UTF-8".into()))?;
    let mut policy: TenantPolicy = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for host in policy.dirs.values_mut() {
        if host.is_relative() {
            *host = base.join(&*host);
        }
    }
    if let Some(root) = policy.root.as_mut().filter(|r| r.is_relative()) {
        *root = base.join(&*root);
    }
    Ok(policy)
}

/// Narrows the signed `caps` of `tenant` by the host's `host` policy.
pub fn narrow(tenant: &str, caps: &Capabilities, host: &TenantPolicy) -> Result<EffectivePolicy, PolicyError> {
    let fuel = tighten("fuel", caps.fuel, host.fuel)?;
    let memory_mib = tighten("memory_mib", caps.memory_mib, host.memory_mib)?;
    let timeout_ms = tighten("timeout_ms", caps.timeout_ms, host.timeout_ms)?;
    let max_output_bytes = tighten("max_output_bytes", caps.max_output_bytes, host.max_output_bytes)?;

    let listed: BTreeSet<&str> = caps.env.iter().map(String::as_str).collect();
    for name in host.env.keys() {
        if !listed.contains(name.as_str()) {
            return Err(PolicyError::EnvNotRequested { name: name.clone() });
        }
    }

    let network = narrow_network(caps, host)?;
    let preopens = map_preopens(caps, host)?;

    Ok(EffectivePolicy {
        tenant: tenant.to_string(),
        fuel,
        memory_mib,
        timeout: Duration::from_millis(timeout_ms),
        max_output_bytes,
        env: host.env.clone(),
        preopens,
        network,
    })
}

/// The host value if it is not larger than the signed one; the signed value
/// when the host says nothing.
fn tighten<T: PartialOrd + Copy + std::fmt::Display + Default>(
    field: &'static str,
    signed: T,
    host: Option<T>,
) -> Result<T, PolicyError> {
    match host {
        None => Ok(signed),
        Some(host) if host > signed => {
            Err(PolicyError::Widening { field, signed: signed.to_string(), host: host.to_string() })
        }
        Some(host) if host == T::default() && field != "max_output_bytes" => {
            Err(PolicyError::Invalid { field, value: host.to_string(), reason: "must be at least 1" })
        }
        Some(host) => Ok(host),
    }
}

fn narrow_network(caps: &Capabilities, host: &TenantPolicy) -> Result<Vec<SocketAddr>, PolicyError> {
    // The manifest's addresses were validated by the signer; an unparsable one
    // here can only mean a manifest that skipped validation, and is dropped.
    let signed: Vec<SocketAddr> = caps.network.iter().filter_map(|a| a.parse().ok()).collect();
    let Some(host_list) = &host.network else {
        return Ok(signed);
    };
    let mut out = Vec::new();
    for text in host_list {
        let addr: SocketAddr = text.parse().map_err(|_| PolicyError::Invalid {
            field: "network",
            value: text.clone(),
            reason: "not an ip:port socket address",
        })?;
        if !signed.contains(&addr) {
            return Err(PolicyError::Widening {
                field: "network",
                signed: format!("{:?}", caps.network),
                host: text.clone(),
            });
        }
        out.push(addr);
    }
    Ok(out)
}

fn map_preopens(caps: &Capabilities, host: &TenantPolicy) -> Result<Vec<GrantedPreopen>, PolicyError> {
    let requested = caps.preopens_by_guest();
    for guest in host.dirs.keys() {
        if !requested.contains_key(guest.as_str()) {
            return Err(PolicyError::UnrequestedMapping { guest: guest.clone() });
        }
    }
    for guest in &host.read_only {
        if !requested.contains_key(guest.as_str()) {
            return Err(PolicyError::UnknownReadOnly { guest: guest.clone() });
        }
    }
    let root = match &host.root {
        Some(root) => {
            Some(std::fs::canonicalize(root).map_err(|source| PolicyError::Root { path: root.clone(), source })?)
        }
        None => None,
    };
    let mut granted = Vec::new();
    for (guest, mode) in requested {
        let Some(host_path) = host.dirs.get(guest) else {
            return Err(PolicyError::UnmappedPreopen { guest: guest.to_string() });
        };
        let canonical = std::fs::canonicalize(host_path).map_err(|source| PolicyError::HostDirectory {
            guest: guest.to_string(),
            path: host_path.clone(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(PolicyError::NotADirectory { guest: guest.to_string(), path: canonical });
        }
        if let Some(root) = &root
            && !canonical.starts_with(root)
        {
            return Err(PolicyError::OutsideRoot { guest: guest.to_string(), path: canonical, root: root.clone() });
        }
        let mode = if host.read_only.iter().any(|g| g == guest) { PreopenMode::ReadOnly } else { mode };
        granted.push(GrantedPreopen { guest: guest.to_string(), host: canonical, mode });
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signer::manifest::Preopen;

    fn caps() -> Capabilities {
        Capabilities {
            fuel: 1000,
            memory_mib: 16,
            timeout_ms: 500,
            max_output_bytes: 100,
            env: vec!["GREETING".into()],
            preopen: vec![Preopen { guest: "/data".into(), mode: PreopenMode::ReadWrite }],
            network: vec!["127.0.0.1:80".into()],
        }
    }

    fn host_with_dir(dir: &Path) -> TenantPolicy {
        TenantPolicy { dirs: BTreeMap::from([("/data".to_string(), dir.to_path_buf())]), ..TenantPolicy::default() }
    }

    #[test]
    fn the_host_can_tighten_every_field() {
        let tmp = tempfile::tempdir().unwrap();
        let host = TenantPolicy {
            fuel: Some(10),
            memory_mib: Some(1),
            timeout_ms: Some(5),
            max_output_bytes: Some(0),
            env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
            network: Some(Vec::new()),
            read_only: vec!["/data".into()],
            ..host_with_dir(tmp.path())
        };
        let policy = narrow("t", &caps(), &host).unwrap();
        assert_eq!(
            (policy.fuel, policy.memory_mib, policy.timeout, policy.max_output_bytes),
            (10, 1, Duration::from_millis(5), 0)
        );
        assert_eq!(policy.env["GREETING"], "hi");
        assert!(policy.network.is_empty());
        assert_eq!(policy.preopens[0].mode, PreopenMode::ReadOnly);
        assert_eq!(policy.preopens[0].host, std::fs::canonicalize(tmp.path()).unwrap());
    }

    #[test]
    fn widening_is_refused_naming_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let base = host_with_dir(tmp.path());
        let cases: Vec<(TenantPolicy, &str)> = vec![
            (
                TenantPolicy { fuel: Some(1001), ..base.clone() },
                "host policy fuel = 1001 would widen the signed fuel = 1000",
            ),
            (TenantPolicy { memory_mib: Some(17), ..base.clone() }, "memory_mib = 17"),
            (TenantPolicy { timeout_ms: Some(501), ..base.clone() }, "timeout_ms = 501"),
            (TenantPolicy { max_output_bytes: Some(101), ..base.clone() }, "max_output_bytes = 101"),
            (TenantPolicy { network: Some(vec!["10.0.0.1:80".into()]), ..base.clone() }, "network = 10.0.0.1:80"),
        ];
        for (host, expected) in cases {
            let err = narrow("t", &caps(), &host).unwrap_err();
            assert_eq!(err.reason_code(), "policy_widening");
            assert!(err.to_string().contains(expected), "{err}");
        }
        let host = TenantPolicy { env: BTreeMap::from([("PATH".to_string(), "/bin".to_string())]), ..base };
        assert!(matches!(narrow("t", &caps(), &host), Err(PolicyError::EnvNotRequested { name }) if name == "PATH"));
    }

    #[test]
    fn preopens_must_match_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let err = narrow("t", &caps(), &TenantPolicy::default()).unwrap_err();
        assert_eq!(err.to_string(), "manifest requests preopen /data, but the host maps no directory to it");
        let mut host = host_with_dir(tmp.path());
        host.dirs.insert("/extra".into(), tmp.path().to_path_buf());
        let err = narrow("t", &caps(), &host).unwrap_err();
        assert_eq!(err.to_string(), "host maps a directory to /extra, which the manifest does not request");
    }

    #[test]
    fn host_directories_must_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let inside = TenantPolicy { root: Some(root.clone()), ..host_with_dir(&root.join("data")) };
        narrow("t", &caps(), &inside).unwrap();
        for sneaky in [root.join("data/../../outside"), root.join("link")] {
            let host = TenantPolicy { root: Some(root.clone()), ..host_with_dir(&sneaky) };
            let err = narrow("t", &caps(), &host).unwrap_err();
            assert_eq!(err.reason_code(), "outside_tenant_root", "{err}");
        }
    }

    #[test]
    fn command_line_additions_apply_on_top() {
        let policies = HostPolicies {
            tenants: BTreeMap::from([("a".to_string(), TenantPolicy { fuel: Some(5), ..TenantPolicy::default() })]),
            extra_env: BTreeMap::from([("K".to_string(), "V".to_string())]),
            ..HostPolicies::default()
        };
        assert_eq!(policies.for_tenant("a").fuel, Some(5));
        assert_eq!(policies.for_tenant("b").fuel, None);
        assert_eq!(policies.for_tenant("b").env["K"], "V");
    }
}
