//! `guardian gc`: the retention pass, once (the daemon runs it at every full
//! rescan when the config has a `[retention]` table).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use guardian::events::{GuardianEvent, Observer};
use guardian::gc::Retention;
use guardian::{Admission, Guardian, RepairMode};

use super::{NodeArgs, printing_observer};
use crate::Outcome;

/// Remove store entries and quarantine evidence past the retention policy: per tenant the current verified version and the newest earlier ones are kept (`--keep-versions` in all), quarantine entries younger than `--quarantine-days`. What is removed is recorded in the audit log (`gc.completed`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deploy directory the state belongs to.
    deploy: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    /// Verified versions kept per tenant, the current one included (default: the config's `[retention] keep_versions`, else 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_versions: Option<u64>,
    /// Quarantine entries younger than this many days are kept (default: the config's `[retention] quarantine_days`, else 90).
    #[arg(long)]
    quarantine_days: Option<u64>,
    /// Print what was removed as one JSON object (`GcReport` in the library).
    #[arg(long)]
    json: bool,
}

/// The policy from the config's `[retention]`, with defaults for what it leaves out.
pub fn retention(config: Option<&signer::config::Retention>) -> Retention {
    let defaults = Retention::default();
    Retention {
        keep_versions: config.and_then(|r| r.keep_versions).unwrap_or(defaults.keep_versions),
        quarantine_max_age: config
            .and_then(|r| r.quarantine_days)
            .map_or(defaults.quarantine_max_age, |days| Duration::from_secs(days.saturating_mul(86_400))),
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let config = args.node.config()?;
    let mut policy = retention(config.retention.as_ref());
    if let Some(keep) = args.keep_versions {
        policy.keep_versions = usize::try_from(keep).unwrap_or(usize::MAX);
    }
    if let Some(days) = args.quarantine_days {
        policy.quarantine_max_age = Duration::from_secs(days.saturating_mul(86_400));
    }
    let options = args.node.guardian_options(args.deploy.clone(), Admission::AcceptSigned)?;
    // With --json, stdout holds the one report object only.
    let observer = if args.json { Box::new(|_: &GuardianEvent| {}) as Observer } else { printing_observer(false) };
    let mut guardian = Guardian::open(options, RepairMode::ReportOnly, observer)
        .with_context(|| format!("cannot open the guardian state for {}", args.deploy.display()))?;
    let report = guardian.gc(&policy)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "kept {} version(s) per tenant and {} day(s) of quarantine: removed {} store entries and {} quarantine entries, {} bytes",
            report.keep_versions,
            report.quarantine_max_age_days,
            report.store_removed.len(),
            report.quarantine_removed.len(),
            report.bytes_freed
        );
        for skipped in &report.skipped {
            println!("could not remove {} (left for the next pass): {}", skipped.name, skipped.reason);
        }
    }
    Ok(Outcome::Clean)
}
