//! `guardian scan`: the watch checks, once, for cron and CI.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use guardian::events::GuardianEvent;
use guardian::{Guardian, RepairMode, ScanReport};

use super::{NewTenants, NodeArgs, printing_observer};
use crate::Outcome;

/// Check every bundle of a deploy directory and the audit log once; with --repair, roll drift back and restore a tampered audit log as `watch` does.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deploy directory: one bundle directory per tenant.
    deploy: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    tiles: super::TilesArg,
    /// Repair what is found: roll back to the last verified version, quarantine what has none, restore the audit log. Without it, drift is only reported (signed upgrades are still accepted into the state).
    #[arg(long)]
    repair: bool,
    /// What to do with a tenant directory not in the state.
    #[arg(long, value_enum, default_value_t = NewTenants::AcceptSigned)]
    new_tenants: NewTenants,
    /// Print the result as one JSON object (see `ScanJson` in the source for its fields).
    #[arg(long)]
    json: bool,
}

/// `--json` output: the verdict, every tenant that was not clean, the audit
/// finding if any, and every event recorded during the scan.
#[derive(serde::Serialize)]
struct ScanJson<'a> {
    clean: bool,
    drift_found: bool,
    repaired: bool,
    #[serde(flatten)]
    report: &'a ScanReport,
    events: Vec<GuardianEvent>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mode = if args.repair { RepairMode::Repair } else { RepairMode::ReportOnly };
    let mut options = args.node.guardian_options(args.deploy.clone(), args.new_tenants.into())?;
    args.tiles.apply(&mut options);
    let collected = Arc::new(Mutex::new(Vec::new()));
    let observer = if args.json {
        let collected = Arc::clone(&collected);
        Box::new(move |event: &GuardianEvent| {
            if let Ok(mut events) = collected.lock() {
                events.push(event.clone());
            }
        }) as guardian::events::Observer
    } else {
        printing_observer(false)
    };
    let mut guardian =
        Guardian::open(options, mode, observer).with_context(|| format!("cannot check {}", args.deploy.display()))?;
    let report = guardian.scan()?;
    let events = collected.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default();
    if args.json {
        let out = ScanJson {
            clean: !report.drift_found(),
            drift_found: report.drift_found(),
            repaired: args.repair,
            report: &report,
            events,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let verdict = if report.drift_found() {
            if args.repair { "drift found and repaired" } else { "drift found" }
        } else {
            "clean"
        };
        println!("checked {} tenants: {verdict}", report.checked);
        for o in &report.outcomes {
            println!(
                "  {} {:?} {}",
                signer::text::escape(&o.tenant),
                o.action,
                signer::text::escape(o.reason.as_deref().unwrap_or(""))
            );
        }
    }
    if report.failed() {
        anyhow::bail!("some tenants could not be checked or repaired (see above)");
    }
    Ok(if report.drift_found() { Outcome::DriftFound } else { Outcome::Clean })
}
