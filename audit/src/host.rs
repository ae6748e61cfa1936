//! Opening the log the way every Night Core binary does: with the host's own
//! key (created on first use, minisign format, see `signer::keyfile`) signing a
//! fresh checkpoint after every append, so a truncation is always detectable.

use std::path::{Path, PathBuf};

use signer::keyfile::{KeyFileError, load_or_create_host_key};

use crate::{AuditError, AuditLog, CheckpointSigner, LogOptions};

/// Why the host's log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostLogError {
    #[error("host key: {0}")]
    HostKey(#[from] KeyFileError),
    #[error("checkpoint origin {origin:?} is not usable: {reason}")]
    Origin { origin: String, reason: String },
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Where a binary writes its events.
#[derive(Debug, Clone)]
pub struct HostLog {
    pub log: PathBuf,
    pub host_key: PathBuf,
    /// The checkpoint's origin line, e.g. `nightcore/node-1`.
    pub origin: String,
}

impl HostLog {
    /// The log named in a node configuration.
    pub fn from_config(config: &signer::config::NodeConfig) -> Self {
        Self { log: config.audit_log.clone(), host_key: config.host_key.clone(), origin: config.origin.clone() }
    }

    /// The log at `log`, written by this node: the host key and origin
    /// come from the node configuration (the key lives in the state
    /// directory), never from beside the log, which is meant to be shipped
    /// off the node and may be written by others.
    pub fn at(log: &Path, config: &signer::config::NodeConfig) -> Self {
        Self { log: log.to_path_buf(), host_key: config.host_key.clone(), origin: config.origin.clone() }
    }

    /// Opens the log for appending, checkpointing with the host key.
    pub fn open(&self) -> Result<AuditLog, HostLogError> {
        if let Some(dir) = self.log.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create the directory of", &self.log, e))?;
        }
        let key = load_or_create_host_key(&self.host_key)?;
        let signer = CheckpointSigner::new(self.origin.clone(), key.signing_key().clone())
            .map_err(|e| HostLogError::Origin { origin: self.origin.clone(), reason: e.to_string() })?;
        Ok(AuditLog::open_with(&self.log, LogOptions { checkpoint_signer: Some(signer), checkpoint_path: None })?)
    }
}
