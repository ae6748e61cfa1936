//! The pipeline's audit events: `module.signed` when a bundle is written or
//! signed, `module.rebuilt` when a rebuild was compared with signed bytes.
//! All of xtask's audit writes go through here.

use anyhow::{Context, Result};
use audit::{Actor, Event, HostLog, kinds};
use serde_json::{Map, Value, json};
use std::path::Path;

use crate::sign::SignedBundle;

/// The log at `log_path`, checkpointed with the host key and origin of the
/// node configuration in the working directory (or the defaults): the key
/// is never looked for beside the log.
pub fn host_log(log_path: &Path) -> Result<HostLog> {
    let config = signer::config::NodeConfig::load(None).context("cannot load the node configuration")?;
    Ok(HostLog::at(log_path, &config))
}

fn record(host_log: &HostLog, kind: &str, data: Value) -> Result<()> {
    let data = match data {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let path = &host_log.log;
    let mut log = host_log.open().with_context(|| format!("opening audit log {}", path.display()))?;
    log.append(&Event::new(kind, Actor::on_this_host("xtask"), data))
        .with_context(|| format!("appending to audit log {}", path.display()))?;
    Ok(())
}

pub fn module_signed(log: &HostLog, bundle: &SignedBundle) -> Result<()> {
    record(
        log,
        kinds::MODULE_SIGNED,
        json!({
            "tenant": bundle.module,
            "version": bundle.version,
            "bundle": bundle.bundle_dir.display().to_string(),
            "module_sha256": bundle.module_sha256,
            "manifest_sha256": bundle.manifest_sha256,
            "key_id": bundle.signed_by.map(|k| k.to_string()),
            "request_only": bundle.signed_by.is_none(),
            "statement": bundle.statement.as_ref().map(|p| p.display().to_string()),
        }),
    )
}

pub fn module_rebuilt(
    log: &HostLog,
    module: &str,
    version: u64,
    report: &crate::rebuild::RebuildReport,
    statement: &crate::provenance::StatementReport,
) -> Result<()> {
    let differing: Vec<&str> = statement.differences.iter().map(|d| d.field).collect();
    record(
        log,
        kinds::MODULE_REBUILT,
        json!({
            "tenant": module,
            "version": version,
            "identical": report.identical,
            "expected_sha256": report.expected.sha256,
            "actual_sha256": report.actual.sha256,
            "statement": statement.status,
            "differing_inputs": differing,
        }),
    )
}
