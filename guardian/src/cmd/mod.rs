//! One module per `guardian` subcommand, and what they share: where the
//! trust store, state and audit log are, and how events are printed.

pub mod audit;
pub mod gc;
pub mod report;
pub mod retire;
pub mod scan;
pub mod status;
pub mod watch;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use guardian::events::{GuardianEvent, Observer};
use guardian::{Admission, AuditOptions, GuardianOptions, TestHooks};
use signer::bundle::ReadLimits;
use signer::config::NodeConfig;
use signer::trust::TrustStore;

/// The test hook that pauses rollbacks (see `TestHooks::rollback_pause`).
pub const ROLLBACK_PAUSE_ENV: &str = "NIGHTCORE_TEST_ROLLBACK_PAUSE_MS";

/// Where things are; every flag overrides `nightcore.toml`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node configuration file (default: ./nightcore.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Trust store directory (*.pub files and trust.toml); default: the config's trust_dir.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// The guardian's state directory; default: the config's state_dir.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The audit log; default: the config's audit_log, or audit.log in the state directory.
    #[arg(long = "audit", alias = "audit-log", value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// The host key that signs audit checkpoints (created if missing); default: the config's host_key, or host.key in the state directory.
    #[arg(long)]
    host_key: Option<PathBuf>,
}

/// `--tiles DIR` of the commands that keep checking the audit log.
#[derive(Debug, clap::Args)]
pub struct TilesArg {
    /// Publish the audit log as static C2SP tlog-tiles in this directory, refreshed whenever the log grows (see `guardian audit tiles`).
    #[arg(long = "tiles", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl TilesArg {
    pub fn apply(&self, options: &mut GuardianOptions) {
        options.audit.tiles_dir = self.dir.clone();
    }
}

impl NodeArgs {
    /// The configuration file named with `--config`, if any.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone()
    }

    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = NodeConfig::load(self.config.as_deref()).context("cannot load the node configuration")?;
        if let Some(state) = &self.state {
            // Paths the config derived from its own state_dir follow --state.
            if config.audit_log == config.state_dir.join("audit.log") {
                config.audit_log = state.join("audit.log");
            }
            if config.host_key == config.state_dir.join("host.key") {
                config.host_key = state.join("host.key");
            }
            config.state_dir = state.clone();
        }
        if let Some(trust) = &self.trust {
            config.trust_dir = trust.clone();
        }
        if let Some(log) = &self.audit_log {
            config.audit_log = log.clone();
        }
        if let Some(key) = &self.host_key {
            config.host_key = key.clone();
        }
        Ok(config)
    }

    pub fn guardian_options(&self, deploy: PathBuf, admission: Admission) -> anyhow::Result<GuardianOptions> {
        let config = self.config()?;
        let rollback_pause = match std::env::var(ROLLBACK_PAUSE_ENV) {
            Ok(ms) => Some(Duration::from_millis(
                ms.parse().with_context(|| format!("{ROLLBACK_PAUSE_ENV}={ms:?} is not a number of milliseconds"))?,
            )),
            Err(_) => None,
        };
        Ok(GuardianOptions {
            deploy_dir: deploy,
            trust_dir: config.trust_dir,
            state_dir: config.state_dir,
            audit: AuditOptions {
                log: config.audit_log,
                checkpoint: None,
                host_key: Some(config.host_key),
                origin: config.origin,
                tiles_dir: None,
            },
            admission,
            limits: ReadLimits::default(),
            test_hooks: TestHooks { rollback_pause },
        })
    }
}

/// The key checkpoints must be signed by: `--log-key PUB` as given, or from
/// the trust store at `trust_dir` the log key bound to the origin of the
/// checkpoint `note` (see [`audit::checkpoint_key`]).
pub fn checkpoint_key(log_key: Option<&Path>, trust_dir: &Path, note: &str) -> anyhow::Result<::audit::CheckpointKey> {
    if let Some(path) = log_key {
        return Ok(::audit::CheckpointKey::Trusted(*signer::keyfile::load_public_key(path)?.verifying_key()));
    }
    let trust =
        TrustStore::load(trust_dir).with_context(|| format!("cannot load the trust store {}", trust_dir.display()))?;
    ::audit::checkpoint_key(&trust, note).with_context(|| {
        format!(
            "trust store {} lists no log_keys; add the host's .pub and bind its id to the node's origin \
             ([log_keys] \"KEYID\" = [\"ORIGIN\"]), or pass --log-key",
            trust_dir.display()
        )
    })
}

/// The text of the checkpoint at `path`, read capped and only if it is a
/// regular file; empty when there is none (verification then says so).
pub fn read_checkpoint_note(path: &Path) -> anyhow::Result<String> {
    match signer::fsutil::read_capped(path, ::audit::checkpoint::MAX_CHECKPOINT_BYTES) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(signer::fsutil::ReadCappedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(String::new())
        }
        Err(e) => Err(e).context("cannot read the checkpoint"),
    }
}

/// How new tenant directories are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewTenants {
    /// Accept a new tenant whose bundle verifies (signed by the threshold of trusted keys).
    AcceptSigned,
    /// Quarantine every tenant directory not already in the state.
    Refuse,
}

impl From<NewTenants> for Admission {
    fn from(value: NewTenants) -> Self {
        match value {
            NewTenants::AcceptSigned => Admission::AcceptSigned,
            NewTenants::Refuse => Admission::Refuse,
        }
    }
}

/// Prints each event as it happens: one JSON object per line, or one
/// readable line. A closed stdout is ignored: the audit log has the record.
pub fn printing_observer(json: bool) -> Observer {
    Box::new(move |event: &GuardianEvent| {
        let line = if json { serde_json::to_string(event).unwrap_or_default() } else { human_line(event) };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
}

fn human_line(event: &GuardianEvent) -> String {
    let fields: Vec<String> =
        ["tenant", "reason_code", "reason", "version", "to_version", "path", "quarantined_to", "file"]
            .iter()
            .filter_map(|k| {
                event
                    .data
                    .get(*k)
                    .filter(|v| !v.is_null())
                    .map(|v| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            })
            .collect();
    signer::text::escape(&format!("{} {} {}", event.time, event.kind, fields.join(" "))).into_owned()
}
