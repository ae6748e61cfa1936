//! Host-side inputs shared by `exec` and `replay`: the node configuration,
//! the trust store, host policies and the compile cache.

use anyhow::Context;
use std::path::{Path, PathBuf};

use runtime::policy::load_policy_file;
use runtime::{CompileCache, HostPolicies, RollbackFloors, TenantFloor};
use signer::config::{CONFIG_FILE, NodeConfig};
use signer::trust::TrustStore;

/// Arguments that say how this host runs guests.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// The trust store directory (default: trust_dir from the config).
    #[arg(long, value_name = "DIR")]
    trust: Option<PathBuf>,

    /// The node configuration file (default: ./nightcore.toml when it exists).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// A host policy file in the [tenants.NAME] format, used instead of the config's policy for the tenant.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Maps a guest directory the manifest requests to a host directory; may be repeated. With --all it applies to every tenant.
    #[arg(long = "dir", value_name = "GUEST=HOST", value_parser = parse_dir)]
    dirs: Vec<(String, PathBuf)>,

    /// Supplies an environment variable the manifest lists; may be repeated.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// Where precompiled modules are kept (default: cache_dir from the config). It must be this user's own and not group- or world-writable; entries are authenticated with the secret at cache_key from the config.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// The secret that authenticates compile-cache entries (default: cache_key from the config); created 0600 if missing. Never inside the cache directory.
    #[arg(long, value_name = "PATH", conflicts_with = "no_cache")]
    cache_key: Option<PathBuf>,

    /// The guardian's state directory, whose rollback floors every run must respect (default: state_dir from the config, or the standard state directory).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,

    /// Compiles every time instead of using the compile cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

/// What [`HostArgs`] resolve to.
#[derive(Debug)]
pub struct Host {
    pub config: NodeConfig,
    /// Whether a configuration file was read (rather than defaults used).
    pub config_file_used: bool,
    pub policies: HostPolicies,
    pub cache: Option<CompileCache>,
}

fn parse_dir(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((guest, host)) if guest.starts_with('/') && !host.is_empty() => {
            Ok((guest.to_string(), PathBuf::from(host)))
        }
        _ => Err(format!("{text:?} is not GUEST=HOST with an absolute guest path")),
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

impl HostArgs {
    /// Loads the configuration and the policy file, and assembles the policies
    /// and cache.
    pub fn load(&self) -> anyhow::Result<Host> {
        let config_file_used = self.config.is_some() || Path::new(CONFIG_FILE).exists();
        let config = NodeConfig::load(self.config.as_deref()).context("cannot load the node configuration")?;
        let replacement = match &self.policy {
            Some(path) => {
                Some(load_policy_file(path).with_context(|| format!("cannot load policy file {}", path.display()))?)
            }
            None => None,
        };
        let policies = HostPolicies {
            tenants: config.tenants.clone(),
            replacement,
            extra_dirs: self.dirs.iter().cloned().collect(),
            extra_env: self.env.iter().cloned().collect(),
        };
        let cache = if self.no_cache {
            None
        } else {
            let dir = self.cache_dir.clone().unwrap_or_else(|| config.cache_dir.clone());
            let key = self.cache_key.as_deref().unwrap_or(&config.cache_key);
            Some(
                CompileCache::open_with_secret_file(dir, key)
                    .context("cannot use the compile cache (pass --no-cache to compile every time)")?,
            )
        };
        Ok(Host { config, config_file_used, policies, cache })
    }

    /// The floors in the guardian state (`--state`, else the config's
    /// `state_dir`); none when there is no guardian state there. A state
    /// that does not check out is an error: a run must not go ahead on the
    /// word of a state file that may have been edited. `trust` is the store
    /// the run verifies against, whose log key for this node's origin
    /// vouches for the state.
    pub fn rollback_floors(
        &self,
        config: &NodeConfig,
        trust: Option<&TrustStore>,
    ) -> anyhow::Result<Option<RollbackFloors>> {
        let state_dir = self.state.as_deref().unwrap_or(&config.state_dir);
        let state_file = state_dir.join(guardian::state::STATE_FILE);
        if std::fs::symlink_metadata(&state_file).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            // No guardian state on this node: nothing to hold runs to.
            return Ok(None);
        }
        let verifier = guardian::state::StateVerifier::for_node(trust, &config.origin, &config.host_key);
        let state = guardian::state::read_tenants(state_dir, &verifier)
            .with_context(|| format!("cannot check bundles against the guardian state in {}", state_dir.display()))?;
        let tenants = state
            .tenants
            .into_iter()
            .map(|(name, record)| {
                let floor = TenantFloor {
                    floor: record.floor,
                    version: record.version,
                    manifest_sha256: record.manifest_sha256,
                };
                (name, floor)
            })
            .collect();
        let retired = state.retired.into_iter().map(|(name, retired)| (name, retired.floor)).collect();
        Ok(Some(RollbackFloors { tenants, retired }))
    }

    /// Loads the trust store named by `--trust` or the configuration.
    pub fn trust_store(&self, config: &NodeConfig) -> anyhow::Result<TrustStore> {
        trust_store(self.trust.as_deref(), config)
    }
}

/// Loads the trust store at `dir`, or the configuration's.
pub fn trust_store(dir: Option<&Path>, config: &NodeConfig) -> anyhow::Result<TrustStore> {
    let dir = dir.unwrap_or(&config.trust_dir);
    TrustStore::load(dir).with_context(|| format!("cannot load the trust store {}", dir.display()))
}
