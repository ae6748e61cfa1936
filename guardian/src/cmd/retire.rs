//! `guardian retire`: take a tenant out of service for good, audited.

use std::path::PathBuf;

use anyhow::Context;
use guardian::events::{GuardianEvent, Observer};
use guardian::{Admission, Guardian, RepairMode};
use serde::Serialize;

use super::{NodeArgs, printing_observer};
use crate::Outcome;

/// Retire a tenant: its deploy directory is moved into the quarantine, the state forgets its record (so nothing restores it, and `guardian gc` frees its store entries) but keeps its rollback floor, so `runtime exec` and the guardian refuse every version it ever had (`tenant_retired`). Only a signed bundle above that floor brings the name back, as a new tenant. Recorded as `tenant.retired`. Retiring a retired tenant again finishes a retirement a crash cut short. Stop the daemon first: it holds the state.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deploy directory the tenant is deployed in.
    deploy: PathBuf,
    /// The tenant to retire (the name the state knows it by).
    tenant: String,
    #[command(flatten)]
    node: NodeArgs,
    /// Print the result as one JSON object: `{"tenant","version","floor","retired_at"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct RetiredJson<'a> {
    tenant: &'a str,
    version: u64,
    floor: u64,
    retired_at: &'a str,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let options = args.node.guardian_options(args.deploy.clone(), Admission::AcceptSigned)?;
    // With --json, stdout holds the one result object only.
    let observer = if args.json { Box::new(|_: &GuardianEvent| {}) as Observer } else { printing_observer(false) };
    let mut guardian = Guardian::open(options, RepairMode::ReportOnly, observer)
        .with_context(|| format!("cannot open the guardian state for {}", args.deploy.display()))?;
    let retired = guardian.retire(&args.tenant)?;
    if args.json {
        let out = RetiredJson {
            tenant: &args.tenant,
            version: retired.version,
            floor: retired.floor,
            retired_at: &retired.retired_at,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "retired {} at v{}: every version up to v{} is refused on this node",
            signer::text::escape(&args.tenant),
            retired.version,
            retired.floor
        );
    }
    Ok(Outcome::Clean)
}
