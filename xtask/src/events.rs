//! The pipeline's audit events: `module.signed` when a bundle is written or
//! signed, `module.rebuilt` when a rebuild was compared with signed bytes.
//! All of xtask's audit writes go through here.

use anyhow::{Context, Result};
use audit::{Actor, Event, HostLog, kinds};
use serde_json::{Map, Value, json};
use std::path::Path;

use crate::sign::SignedBundle;

fn record(log_path: &Path, kind: &str, data: Value) -> Result<()> {
    let data = match data {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let config = signer::config::NodeConfig::load(None).context("cannot load the node configuration")?;
    let mut log =
        HostLog::at(log_path, &config).open().with_context(|| format!("opening audit log {}", log_path.display()))?;
    log.append(&Event::new(kind, Actor::on_this_host("xtask"), data))
        .with_context(|| format!("appending to audit log {}", log_path.display()))?;
    Ok(())
}

pub fn module_signed(log_path: &Path, bundle: &SignedBundle) -> Result<()> {
    record(
        log_path,
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
    log_path: &Path,
    module: &str,
    version: u64,
    report: &crate::rebuild::RebuildReport,
    statement: &crate::provenance::StatementReport,
) -> Result<()> {
    let differing: Vec<&str> = statement.differences.iter().map(|d| d.field).collect();
    record(
        log_path,
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
