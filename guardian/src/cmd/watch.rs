//! `guardian watch`: the daemon.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use guardian::watch::{Daemon, WatchOptions};
use guardian::{Guardian, RepairMode};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{NewTenants, NodeArgs, printing_observer};
use crate::Outcome;

/// Verify every bundle of a deploy directory, then keep watching it: roll back drift to the last verified version and accept signed upgrades, until SIGTERM or SIGINT. SIGHUP reloads the trust store (a store that does not load is refused and the old one kept; both are recorded as trust.reloaded / trust.reload_failed).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deploy directory: one bundle directory per tenant.
    deploy: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    tiles: super::TilesArg,
    /// Seconds between full rescans, which catch what file events miss (writes through shared mappings, dropped events).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_secs: u64,
    /// Milliseconds a tenant must be quiet after a file event before it is checked, so that a bundle deployed file by file is judged whole.
    #[arg(long, default_value_t = 200)]
    settle_ms: u64,
    /// Write this file (atomically, JSON with the pid) once the initial verification is done.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// What to do with a tenant directory that appears while watching.
    #[arg(long, value_enum, default_value_t = NewTenants::AcceptSigned)]
    new_tenants: NewTenants,
    /// Print every event as one JSON object per line on stdout (fields `kind`, `time` and `data`, as in the audit log; see the `guardian::events` docs).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut options = args.node.guardian_options(args.deploy.clone(), args.new_tenants.into())?;
    args.tiles.apply(&mut options);
    let retention = args.node.config()?.retention.as_ref().map(|r| super::gc::retention(Some(r)));
    let guardian = Guardian::open(options, RepairMode::Repair, printing_observer(args.json))
        .with_context(|| format!("cannot start guarding {}", args.deploy.display()))?;
    let watch = WatchOptions {
        rescan_interval: Duration::from_secs(args.rescan_secs),
        settle: Duration::from_millis(args.settle_ms),
        ready_file: args.ready_file,
        retention,
    };
    let daemon = Daemon::new(guardian, watch)?;
    let stop = daemon.stop_handle();
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).context("cannot install signal handlers")?;
    let signal_handle = signals.handle();
    let config_path = args.node.config_path();
    let signal_thread = std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal == SIGHUP {
                // The trust store is reloaded by the daemon; the rest of the
                // configuration (paths, origin) is fixed for its lifetime, so
                // a file that no longer loads is reported, not applied.
                if let Err(e) = signer::config::NodeConfig::load(config_path.as_deref()) {
                    tracing::error!(error = %e, "the configuration no longer loads; a restart would fail, the running daemon keeps its settings");
                }
                tracing::info!("reloading the trust store on SIGHUP");
                stop.reload();
                continue;
            }
            tracing::info!(signal, "stopping on signal");
            stop.stop();
            break;
        }
    });
    let result = daemon.run();
    signal_handle.close();
    let _ = signal_thread.join();
    result?;
    Ok(Outcome::Clean)
}
