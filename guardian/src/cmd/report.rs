//! `guardian report --html OUT.html`: the audit log as one self-contained
//! HTML page (see `guardian::report`), after verifying the whole log against
//! its signed checkpoint so the page can say whether to believe it.
//!
//! As with `guardian audit verify`, the checkpoint key comes from the trust
//! store's `log_keys` (`--trust`, default: the config's trust_dir) or from
//! `--log-key PUB`, never from beside the log.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use audit::{Filter, default_checkpoint_path, read_entries, verify_log};
use guardian::report::{LogVerification, ReportStatus, render_html};
use signer::config::NodeConfig;
use signer::fsutil::{FileMode, write_output};

use crate::Outcome;

/// Unreadable lines listed on the page at most; the count is always exact.
const MAX_UNREADABLE_LISTED: usize = 100;

/// Render the audit log as one self-contained HTML page (timeline per tenant, fuel and duration charts, verification status); exits 1 when the log is tampered (the page is still written and says how).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the page (replaced atomically).
    #[arg(long, value_name = "OUT.html")]
    html: PathBuf,
    /// The audit log (default: audit_log from the config).
    #[arg(long, value_name = "PATH")]
    audit: Option<PathBuf>,
    /// The node configuration file (default: ./nightcore.toml when it exists).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Trust store whose `log_keys` may sign checkpoints (default: trust_dir from the config).
    #[arg(long, value_name = "DIR", conflicts_with = "log_key")]
    trust: Option<PathBuf>,
    /// The log's public key (minisign format), instead of a trust store.
    #[arg(long, value_name = "PUB")]
    log_key: Option<PathBuf>,
    /// Show at most this many of the newest entries; verification always covers the whole log.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_entries: u64,
    /// Print one JSON object ({"html", "status", "entries_read", "entries_shown", "unreadable_lines"}) instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// `--json` output.
#[derive(serde::Serialize)]
struct ReportJson<'a> {
    html: &'a Path,
    status: &'static str,
    entries_read: u64,
    entries_shown: usize,
    unreadable_lines: usize,
}

pub fn run(args: Args) -> Result<Outcome> {
    let config = NodeConfig::load(args.config.as_deref()).context("cannot load the node configuration")?;
    let log_path = args.audit.clone().unwrap_or_else(|| config.audit_log.clone());
    let checkpoint = default_checkpoint_path(&log_path);
    let trust_dir = args.trust.as_deref().unwrap_or(&config.trust_dir);
    let note = super::read_checkpoint_note(&checkpoint)?;
    let report = match super::checkpoint_key(args.log_key.as_deref(), trust_dir, &note)? {
        audit::CheckpointKey::Trusted(key) => {
            verify_log(&log_path, &checkpoint, &key).with_context(|| format!("verifying {}", log_path.display()))?
        }
        audit::CheckpointKey::NotBound(tampering) => audit::VerifyReport::Tampered(tampering),
    };
    let verification = LogVerification::from_report(&report);

    // Read after verifying: entries appended meanwhile are shown too, and
    // marked as not covered by the checkpoint that was verified.
    let limit = usize::try_from(args.max_entries).unwrap_or(usize::MAX);
    let mut entries = VecDeque::new();
    let mut entries_read = 0u64;
    let mut unreadable = Vec::new();
    let mut unreadable_count = 0usize;
    for item in read_entries(&log_path, Filter::default()).with_context(|| format!("reading {}", log_path.display()))? {
        match item {
            Ok(entry) => {
                entries_read += 1;
                if entries.len() == limit {
                    entries.pop_front();
                }
                entries.push_back(entry);
            }
            Err(e) => {
                unreadable_count += 1;
                if unreadable.len() < MAX_UNREADABLE_LISTED {
                    unreadable.push(e.to_string());
                }
            }
        }
    }
    let entries: Vec<audit::Entry> = entries.into();
    let status = ReportStatus {
        log: log_path.display().to_string(),
        generated_at: signer::manifest::format_rfc3339(time::OffsetDateTime::now_utc()),
        verification,
        entries_read,
        unreadable_lines: unreadable,
    };
    let html = render_html(&entries, &status);
    write_output(&args.html, html.as_bytes(), FileMode::Public)
        .with_context(|| format!("writing {}", args.html.display()))?;

    if args.json {
        let out = ReportJson {
            html: &args.html,
            status: status.verification.code(),
            entries_read,
            entries_shown: entries.len(),
            unreadable_lines: unreadable_count,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "wrote {}: {} of {} entries, log {}",
            args.html.display(),
            entries.len(),
            entries_read,
            status.verification.code()
        );
    }
    Ok(match status.verification {
        LogVerification::Intact { .. } => Outcome::Clean,
        LogVerification::Tampered { .. } => Outcome::DriftFound,
    })
}
