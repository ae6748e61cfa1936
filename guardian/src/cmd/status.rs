//! `guardian status`: what the state says, read without taking the lock.

use guardian::state::{RecentEvent, RetiredTenant, TenantRecord};
use serde::Serialize;
use signer::text::escape;

use super::NodeArgs;
use crate::Outcome;

/// Show the tenants, their verified versions and rollback floors, and the last events, from the state directory.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    /// Print the status as one JSON object (see `StatusJson` in the source for its fields).
    #[arg(long)]
    json: bool,
}

/// `--json` output.
#[derive(Serialize)]
struct StatusJson<'a> {
    state_dir: String,
    tenants: Vec<TenantJson<'a>>,
    /// Tenants taken out of service by `guardian retire`, with the floor
    /// every version up to which is refused.
    retired: Vec<RetiredJson<'a>>,
    recent_events: &'a [RecentEvent],
}

#[derive(Serialize)]
struct RetiredJson<'a> {
    tenant: &'a str,
    #[serde(flatten)]
    retired: &'a RetiredTenant,
}

#[derive(Serialize)]
struct TenantJson<'a> {
    tenant: &'a str,
    version: u64,
    version_label: &'a str,
    floor: u64,
    digest: &'a str,
    manifest_sha256: &'a str,
    module_sha256: &'a str,
    signers: &'a [String],
    accepted_at: &'a str,
}

impl<'a> TenantJson<'a> {
    fn new(tenant: &'a str, r: &'a TenantRecord) -> Self {
        Self {
            tenant,
            version: r.version,
            version_label: &r.version_label,
            floor: r.floor,
            digest: &r.digest,
            manifest_sha256: &r.manifest_sha256,
            module_sha256: &r.module_sha256,
            signers: &r.signers,
            accepted_at: &r.accepted_at,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let config = args.node.config()?;
    let trust = signer::trust::TrustStore::load(&config.trust_dir).ok();
    let verifier = guardian::state::StateVerifier::for_node(trust.as_ref(), &config.origin, &config.host_key);
    let state = guardian::read_state(&config.state_dir, &verifier)?;
    let out = StatusJson {
        state_dir: config.state_dir.display().to_string(),
        tenants: state.tenants.iter().map(|(t, r)| TenantJson::new(t, r)).collect(),
        retired: state.retired.iter().map(|(tenant, retired)| RetiredJson { tenant, retired }).collect(),
        recent_events: &state.recent_events,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(Outcome::Clean);
    }
    // Names, labels and summaries come from tenants and deployers: escaped
    // so that a name cannot repaint the terminal.
    println!("state {}: {} tenants", escape(&out.state_dir), out.tenants.len());
    for t in &out.tenants {
        println!(
            "  {:<24} v{:<6} ({}) floor {:<6} manifest {}…  since {}",
            escape(t.tenant),
            t.version,
            escape(t.version_label),
            t.floor,
            &t.manifest_sha256[..12.min(t.manifest_sha256.len())],
            t.accepted_at
        );
    }
    if !out.retired.is_empty() {
        println!("retired:");
        for t in &out.retired {
            println!(
                "  {:<24} v{:<6} floor {:<6} since {}",
                escape(t.tenant),
                t.retired.version,
                t.retired.floor,
                escape(&t.retired.retired_at)
            );
        }
    }
    if !out.recent_events.is_empty() {
        println!("recent events:");
        for e in out.recent_events {
            println!(
                "  {} {} {} {}",
                escape(&e.time),
                escape(&e.kind),
                escape(e.tenant.as_deref().unwrap_or("-")),
                escape(&e.summary)
            );
        }
    }
    Ok(Outcome::Clean)
}
