//! `guardian audit …`: the audit log's command-line face: verify, show,
//! checkpoint, prove, consistency, verify-proof.
//!
//! Verifiers never trust a key found beside the log: the checkpoint key comes
//! from the trust store's `log_keys` (`--trust`, default: the config's
//! trust_dir) or from `--log-key PUB` (a minisign public key file).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

use audit::CheckpointKey;
use audit::{
    AuditProof, Filter, HostLog, OldTree, VerifyReport, default_checkpoint_path, load_checkpoint, prove_consistency,
    prove_inclusion, read_entries, verify_log, verify_proof,
};
use signer::config::NodeConfig;

use super::read_checkpoint_note;

const EXIT_CODES: &str = "Exit codes: verify: 0 = intact, 1 = tampered (first bad seq and reason printed), 2 = I/O error. \
verify-proof: 0 = valid, 1 = invalid, 2 = I/O error. Other subcommands: 0 = done, 2 = error.";

/// Verify, inspect and prove things about the audit log.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
    /// The audit log (default: audit_log from the config).
    #[arg(long, global = true, value_name = "PATH")]
    audit: Option<PathBuf>,
    /// The node configuration file (default: ./nightcore.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

/// How `prove` writes its proof.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProofFormat {
    Json,
    TlogProof,
}

/// Which key checkpoints must be signed by.
#[derive(Debug, clap::Args)]
struct KeyArgs {
    /// Trust store whose `log_keys` may sign checkpoints (default: trust_dir from the config).
    #[arg(long, value_name = "DIR", conflicts_with = "log_key")]
    trust: Option<PathBuf>,
    /// The log's public key (minisign format), instead of a trust store.
    #[arg(long, value_name = "PUB")]
    log_key: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Sign and write a checkpoint of the log as it is now, with the host key.
    Checkpoint,
    /// Print a consistency proof (JSON) between the tree of OLD_SIZE entries and the current checkpoint.
    Consistency { old_size: u64 },
    /// Print an inclusion proof of entry SEQ in the current checkpoint (JSON, or a C2SP tlog-proof).
    Prove {
        seq: u64,
        /// `json`, or `tlog-proof` (c2sp.org/tlog-proof@v1, the entry's line as its extra data); `verify-proof` reads both.
        #[arg(long, value_enum, default_value_t = ProofFormat::Json)]
        format: ProofFormat,
    },
    /// List entries, optionally only of a kind (or dotted prefix) and since a time.
    Show {
        /// Only entries of this kind, or of kinds under this dotted prefix (`run` matches `run.finished`).
        #[arg(long)]
        kind: Option<String>,
        /// Only entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
    /// Walk the whole log: every hash, seq continuity, the chain, and the signed checkpoint.
    Verify {
        /// The log to verify (default: --audit, then the config).
        log: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Write the log as static C2SP tlog-tiles files (tile/…, checkpoint) into DIR, incrementally: only what the previous export there did not cover.
    Tiles {
        /// The directory to serve (created if missing); a history published there is never rewritten.
        dir: PathBuf,
    },
    /// Verify a proof printed by `prove` or `consistency`, offline.
    VerifyProof {
        /// The proof file (JSON).
        proof: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// For a consistency proof: an older signed checkpoint you trust, which the proof must extend.
        #[arg(long, value_name = "FILE")]
        old_checkpoint: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = NodeConfig::load(args.config.as_deref())?;
    let log_path = args.audit.clone().unwrap_or_else(|| config.audit_log.clone());
    match args.command {
        AuditCommand::Verify { log, keys } => {
            let log_path = log.unwrap_or(log_path);
            let checkpoint = default_checkpoint_path(&log_path);
            let report = match key_for(&keys, &config, &read_checkpoint_note(&checkpoint)?)? {
                CheckpointKey::Trusted(key) => verify_log(&log_path, &checkpoint, &key)
                    .with_context(|| format!("reading {}", log_path.display()))?,
                CheckpointKey::NotBound(tampering) => VerifyReport::Tampered(tampering),
            };
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            match report {
                VerifyReport::Intact(intact) => {
                    if !args.json {
                        println!(
                            "intact: {} entries, root {}, checkpoint covers {}{}",
                            intact.entries,
                            intact.root,
                            intact.checkpoint.as_ref().map_or(0, |c| c.size),
                            if intact.uncheckpointed_entries > 0 {
                                format!(
                                    " ({} entries after it are not yet covered by a signature)",
                                    intact.uncheckpointed_entries
                                )
                            } else {
                                String::new()
                            }
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                VerifyReport::Tampered(tampering) => {
                    if !args.json {
                        println!("TAMPERED: {tampering}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCommand::Show { kind, since } => {
            let since = match since {
                Some(text) => Some(signer::manifest::parse_rfc3339(&text, "--since")?),
                None => None,
            };
            for item in read_entries(&log_path, Filter { kind, since })? {
                match item {
                    Ok(entry) => {
                        if args.json {
                            println!("{}", serde_json::to_string(&entry)?);
                        } else {
                            println!(
                                "{:>6}  {}  {:<20} {}",
                                entry.seq,
                                signer::manifest::format_rfc3339(entry.time),
                                entry.kind,
                                serde_json::Value::Object(entry.data.clone())
                            );
                        }
                    }
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint => {
            let mut log =
                HostLog { log: log_path, host_key: config.host_key.clone(), origin: config.origin.clone() }.open()?;
            let signer = audit::CheckpointSigner::new(
                config.origin.clone(),
                signer::keyfile::load_or_create_host_key(&config.host_key)?.signing_key().clone(),
            )?;
            let signed = log.write_checkpoint(&signer)?;
            print!("{}", signed.to_signed_note());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tiles { dir } => {
            let report = audit::tiles::export_tiles(&log_path, &default_checkpoint_path(&log_path), &dir)
                .with_context(|| format!("cannot write the tiles of {} into {}", log_path.display(), dir.display()))?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {} entries published (was {}): {} hash tiles and {} entry bundles written",
                    dir.display(),
                    report.size,
                    report.previous_size,
                    report.hash_tiles,
                    report.entry_bundles
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prove { seq, format } => {
            let signed = load_checkpoint(&default_checkpoint_path(&log_path))?;
            let proof = prove_inclusion(&log_path, &signed, seq)?;
            match format {
                ProofFormat::Json => println!("{}", serde_json::to_string_pretty(&AuditProof::Inclusion(proof))?),
                ProofFormat::TlogProof => print!("{}", proof.to_tlog_proof()),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Consistency { old_size } => {
            let signed = load_checkpoint(&default_checkpoint_path(&log_path))?;
            let proof = AuditProof::Consistency(prove_consistency(&log_path, &signed, old_size)?);
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::VerifyProof { proof, keys, old_checkpoint } => {
            let parsed = AuditProof::read(&proof).with_context(|| format!("reading the proof {}", proof.display()))?;
            let checkpoint_text = match &parsed {
                AuditProof::Inclusion(p) => p.checkpoint.clone(),
                AuditProof::Consistency(p) => p.checkpoint.clone(),
            };
            let key = match key_for(&keys, &config, &checkpoint_text)? {
                CheckpointKey::Trusted(key) => key,
                CheckpointKey::NotBound(tampering) => {
                    if args.json {
                        println!("{}", serde_json::json!({"valid": false, "reason": tampering.to_string()}));
                    } else {
                        println!("INVALID: {tampering}");
                    }
                    return Ok(ExitCode::from(1));
                }
            };
            let old_text = match &old_checkpoint {
                Some(path) => Some(
                    String::from_utf8(signer::fsutil::read_capped(path, audit::checkpoint::MAX_CHECKPOINT_BYTES)?)
                        .with_context(|| format!("{} is not UTF-8", path.display()))?,
                ),
                None => None,
            };
            let old = match &old_text {
                Some(text) => OldTree::SignedCheckpoint(text),
                None => OldTree::DangerouslyUnanchored,
            };
            if matches!(parsed, AuditProof::Consistency(_)) && old_text.is_none() {
                eprintln!(
                    "note: no --old-checkpoint given: the proof shows the new tree extends the old root it names, not that you trusted that root"
                );
            }
            match verify_proof(&parsed, &key, old) {
                Ok(verified) => {
                    if args.json {
                        println!("{}", serde_json::json!({"valid": true, "proof": verified}));
                    } else {
                        println!("valid");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if args.json {
                        println!("{}", serde_json::json!({"valid": false, "reason": e.to_string()}));
                    } else {
                        println!("INVALID: {e}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// The key checkpoints of this log must be signed by; see [`super::checkpoint_key`].
fn key_for(keys: &KeyArgs, config: &NodeConfig, note: &str) -> Result<CheckpointKey> {
    super::checkpoint_key(keys.log_key.as_deref(), keys.trust.as_deref().unwrap_or(&config.trust_dir), note)
}
