//! `nightcore.toml`: where a host keeps its trust store, audit log and state,
//! and how it narrows each tenant's signed capabilities.
//!
//! Every binary reads the same file (from the working directory, or `--config`),
//! and every path in it is relative to the file's own directory, so a config can
//! be moved with the tree it describes.
//!
//! Without a config file the state lives in the standard place, never in
//! whatever directory the command happens to run in: `$XDG_STATE_HOME/nightcore`
//! (else `~/.local/state/nightcore`, or `/var/lib/nightcore` for root) and the
//! compile cache in `$XDG_CACHE_HOME/nightcore/compile-cache` (else
//! `~/.cache/nightcore/compile-cache`, or `/var/cache/nightcore/compile-cache`
//! for root). The host key always lives in the state directory, so every
//! binary on a node signs with the same one, and never beside the audit log,
//! which is meant to be shipped off the node.
//!
//! ```toml
//! trust_dir = "trust"
//! state_dir = "state"            # guardian store, host key, cache secret
//! audit_log = "state/audit.log"  # default: <state_dir>/audit.log
//! host_key = "state/host.key"    # default: <state_dir>/host.key
//! cache_dir = "cache"            # default: <state_dir>/compile-cache
//! cache_key = "state/cache.key"  # default: <state_dir>/cache.key (never inside cache_dir)
//! origin = "nightcore.example/node-1"  # checkpoint origin line; default: nightcore/<hostname>
//!
//! [runtime]                      # `runtime exec` as a user of its own, with a log of its own
//! audit_log = "/var/log/nightcore-runtime/audit.log"   # never the node's log
//! log_key = "/var/lib/nightcore-runtime/log.key"       # never the host key
//! origin = "nightcore.example/node-1/runtime"          # never the node's origin
//!
//! [retention]                    # what `guardian gc` keeps (and the daemon, every rescan)
//! keep_versions = 3              # verified versions per tenant, the current one included
//! quarantine_days = 90           # quarantine evidence younger than this stays
//!
//! [tenants.hello]                # host policy: may only tighten the signed capabilities
//! fuel = 50000000
//! memory_mib = 32
//! timeout_ms = 1000
//! max_output_bytes = 65536
//! env = { GREETING = "hello" }   # values the host supplies for names the manifest allows
//! dirs = { "/input" = "/srv/tenants/hello/in" }  # guest path -> host path
//! root = "/srv/tenants/hello"    # every mapped host dir must be inside this
//! network = []                   # subset of the manifest's addresses
//! read_only = ["/input"]         # downgrade these rw preopens to ro
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::{ReadCappedError, read_capped};

pub const CONFIG_FILE: &str = "nightcore.toml";
/// The largest `nightcore.toml` read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A host's policy for one tenant. Every field narrows; none can widen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicy {
    pub fuel: Option<u64>,
    pub memory_mib: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<u64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub dirs: BTreeMap<String, PathBuf>,
    pub root: Option<PathBuf>,
    pub network: Option<Vec<String>>,
    #[serde(default)]
    pub read_only: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    trust_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    host_key: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    cache_key: Option<PathBuf>,
    origin: Option<String>,
    #[serde(default)]
    tenants: BTreeMap<String, TenantPolicy>,
    retention: Option<Retention>,
    runtime: Option<RuntimeLogFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeLogFile {
    audit_log: PathBuf,
    log_key: PathBuf,
    origin: String,
}

/// Where `runtime exec` records its runs, and with which key and origin.
///
/// Without a `[runtime]` table this is the node's own log, host key and
/// origin, so the runtime must run as the guardian's user to append. With one,
/// the runtime keeps a log of its own under its own origin and key, so it can
/// run as a third user that can read neither the host key nor write the
/// node's log: its key, bound in the trust store to its origin alone, can
/// sign neither the node's checkpoints nor the guardian's state (both are
/// checked against the keys bound to the node's origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLog {
    pub audit_log: PathBuf,
    pub log_key: PathBuf,
    pub origin: String,
}

/// `[retention]`: what `guardian gc` (and the daemon, at each full rescan,
/// when this table is present) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Verified versions kept per tenant, the current one included.
    pub keep_versions: Option<usize>,
    /// Quarantine evidence younger than this many days is kept.
    pub quarantine_days: Option<u64>,
}

/// The resolved configuration: every path absolute or relative to the working
/// directory, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub trust_dir: PathBuf,
    pub state_dir: PathBuf,
    pub audit_log: PathBuf,
    pub host_key: PathBuf,
    /// Precompiled artifacts of verified modules.
    pub cache_dir: PathBuf,
    /// The secret that authenticates them; outside `cache_dir`, so that
    /// someone who can write the cache cannot replace it.
    pub cache_key: PathBuf,
    pub origin: String,
    pub tenants: BTreeMap<String, TenantPolicy>,
    /// `[retention]`, if the file has one.
    pub retention: Option<Retention>,
    /// Where `runtime exec` appends (`[runtime]`, else the node's log).
    pub runtime: RuntimeLog,
    /// The file this was loaded from; `None` when the defaults are used.
    pub file: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] ReadCappedError),
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} is inside the cache directory {cache_dir}: whoever can write the cache could replace it")]
    CacheKeyInsideCache { path: PathBuf, cache_dir: PathBuf },
    #[error(
        "{path}: [runtime] {field} is the node's own ({value}): the runtime's log must have a path, key and origin of its own, or its key could sign for the node"
    )]
    RuntimeLogNotSeparate { path: PathBuf, field: &'static str, value: String },
}

impl NodeConfig {
    /// Loads `path`; when `path` is `None`, loads `./nightcore.toml` if it exists
    /// and otherwise uses the defaults (`./trust`, and the standard state and
    /// cache directories: see the module documentation).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (file, base, source) = match path {
            Some(path) => (Self::read(path)?, parent(path), Some(path.to_path_buf())),
            None => {
                let default = Path::new(CONFIG_FILE);
                if default.exists() {
                    (Self::read(default)?, PathBuf::from("."), Some(default.to_path_buf()))
                } else {
                    (ConfigFile::default(), PathBuf::from("."), None)
                }
            }
        };
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let state_dir = match (&file.state_dir, &source) {
            (Some(dir), _) => resolve(dir),
            (None, Some(_)) => resolve(Path::new("state")),
            (None, None) => standard_dir(StandardDir::State),
        };
        let cache_dir = match (&file.cache_dir, &source) {
            (Some(dir), _) => resolve(dir),
            (None, Some(_)) => state_dir.join("compile-cache"),
            (None, None) => standard_dir(StandardDir::Cache).join("compile-cache"),
        };
        let cache_key = file.cache_key.as_deref().map(resolve).unwrap_or_else(|| state_dir.join("cache.key"));
        if cache_key.starts_with(&cache_dir) {
            return Err(ConfigError::CacheKeyInsideCache { path: cache_key, cache_dir });
        }
        let mut tenants = file.tenants;
        for policy in tenants.values_mut() {
            for host in policy.dirs.values_mut() {
                *host = resolve(host);
            }
            if let Some(root) = &policy.root {
                policy.root = Some(resolve(root));
            }
        }
        let audit_log = file.audit_log.as_deref().map(resolve).unwrap_or_else(|| state_dir.join("audit.log"));
        let host_key = file.host_key.as_deref().map(resolve).unwrap_or_else(|| state_dir.join("host.key"));
        let origin = file.origin.unwrap_or_else(default_origin);
        let runtime = match file.runtime {
            None => RuntimeLog { audit_log: audit_log.clone(), log_key: host_key.clone(), origin: origin.clone() },
            Some(own) => {
                let runtime = RuntimeLog {
                    audit_log: resolve(&own.audit_log),
                    log_key: resolve(&own.log_key),
                    origin: own.origin,
                };
                let shared = |field: &'static str, value: String| ConfigError::RuntimeLogNotSeparate {
                    path: source.clone().unwrap_or_default(),
                    field,
                    value,
                };
                // Paths are compared as written (after resolving): a second
                // name for the same file is the operator's to avoid, and the
                // distinct origin is what keeps the keys' powers apart.
                if runtime.origin == origin {
                    return Err(shared("origin", origin));
                }
                if runtime.audit_log == audit_log {
                    return Err(shared("audit_log", audit_log.display().to_string()));
                }
                if runtime.log_key == host_key {
                    return Err(shared("log_key", host_key.display().to_string()));
                }
                runtime
            }
        };
        Ok(Self {
            trust_dir: resolve(file.trust_dir.as_deref().unwrap_or(Path::new("trust"))),
            audit_log,
            host_key,
            origin,
            runtime,
            state_dir,
            cache_dir,
            cache_key,
            tenants,
            retention: file.retention,
            file: source,
        })
    }

    fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { path: path.to_path_buf(), reason };
        let bytes = read_capped(path, MAX_CONFIG_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid("not valid UTF-8".into()))?;
        toml::from_str(&text).map_err(|e| invalid(e.to_string()))
    }
}

#[derive(Clone, Copy)]
enum StandardDir {
    State,
    Cache,
}

/// `$XDG_STATE_HOME/nightcore` or `$XDG_CACHE_HOME/nightcore` when set;
/// otherwise `/var/lib/nightcore` or `/var/cache/nightcore` for root, and
/// `~/.local/state/nightcore` or `~/.cache/nightcore` for anyone else.
fn standard_dir(kind: StandardDir) -> PathBuf {
    let (variable, system, home_relative) = match kind {
        StandardDir::State => ("XDG_STATE_HOME", "/var/lib/nightcore", ".local/state"),
        StandardDir::Cache => ("XDG_CACHE_HOME", "/var/cache/nightcore", ".cache"),
    };
    // The XDG base directory spec ignores relative values.
    if let Some(base) = std::env::var_os(variable).map(PathBuf::from).filter(|p| p.is_absolute()) {
        return base.join("nightcore");
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from(system);
    }
    match std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(home) => home.join(home_relative).join("nightcore"),
        None => PathBuf::from(system),
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `nightcore/<hostname>`: the checkpoint origin when none is configured.
pub fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_: io::Error| "localhost".to_string());
    format!("nightcore/{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        std::fs::write(
            &path,
            "trust_dir = \"t\"\nstate_dir = \"/abs/state\"\n[tenants.hello]\nfuel = 5\ndirs = { \"/in\" = \"data/in\" }\n",
        )
        .unwrap();
        let cfg = NodeConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.trust_dir, dir.path().join("t"));
        assert_eq!(cfg.audit_log, PathBuf::from("/abs/state/audit.log"));
        assert_eq!(cfg.host_key, PathBuf::from("/abs/state/host.key"));
        assert_eq!(cfg.cache_dir, PathBuf::from("/abs/state/compile-cache"));
        assert_eq!(cfg.cache_key, PathBuf::from("/abs/state/cache.key"));
        assert_eq!(cfg.file.as_deref(), Some(path.as_path()));
        let hello = &cfg.tenants["hello"];
        assert_eq!(hello.fuel, Some(5));
        assert_eq!(hello.dirs["/in"], dir.path().join("data/in"));
    }

    #[test]
    fn a_cache_key_inside_the_cache_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        std::fs::write(&path, "cache_dir = \"c\"\ncache_key = \"c/k\"\n").unwrap();
        let err = NodeConfig::load(Some(&path)).unwrap_err();
        assert!(matches!(err, ConfigError::CacheKeyInsideCache { .. }), "{err}");
    }

    #[test]
    fn without_a_runtime_table_the_runtime_appends_to_the_node_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        std::fs::write(&path, "origin = \"example/node\"\n").unwrap();
        let cfg = NodeConfig::load(Some(&path)).unwrap();
        let expected =
            RuntimeLog { audit_log: cfg.audit_log.clone(), log_key: cfg.host_key.clone(), origin: cfg.origin.clone() };
        assert_eq!(cfg.runtime, expected);
    }

    #[test]
    fn a_runtime_table_gives_the_runtime_a_log_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        std::fs::write(
            &path,
            "origin = \"example/node\"\n[runtime]\naudit_log = \"run/audit.log\"\nlog_key = \"run/log.key\"\norigin = \"example/node/runtime\"\n",
        )
        .unwrap();
        let cfg = NodeConfig::load(Some(&path)).unwrap();
        let expected = RuntimeLog {
            audit_log: dir.path().join("run/audit.log"),
            log_key: dir.path().join("run/log.key"),
            origin: "example/node/runtime".into(),
        };
        assert_eq!(cfg.runtime, expected);
        assert_eq!(cfg.origin, "example/node");
        assert_eq!(cfg.audit_log, dir.path().join("state/audit.log"));
    }

    #[test]
    fn a_runtime_log_that_shares_the_node_origin_log_or_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        let own = [
            ("audit_log", "\"run/audit.log\""),
            ("log_key", "\"run/log.key\""),
            ("origin", "\"example/node/runtime\""),
        ];
        let node =
            [("audit_log", "\"state/audit.log\""), ("log_key", "\"state/host.key\""), ("origin", "\"example/node\"")];
        for (shared, node_value) in node {
            let table: String = own
                .iter()
                .map(|&(field, value)| format!("{field} = {}\n", if field == shared { node_value } else { value }))
                .collect();
            std::fs::write(&path, format!("origin = \"example/node\"\n[runtime]\n{table}")).unwrap();
            match NodeConfig::load(Some(&path)) {
                Err(ConfigError::RuntimeLogNotSeparate { field, .. }) => assert_eq!(field, shared),
                other => panic!("[runtime] sharing the node's {shared}: {other:?}"),
            }
        }
        // All three are needed: a log of its own needs its own key and origin.
        std::fs::write(&path, "[runtime]\naudit_log = \"run/audit.log\"\n").unwrap();
        let err = NodeConfig::load(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("missing field `log_key`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightcore.toml");
        std::fs::write(&path, "trust = \"t\"\n").unwrap();
        let err = NodeConfig::load(Some(&path)).unwrap_err();
        assert!(err.to_string().contains("unknown field `trust`"), "{err}");
    }
}
