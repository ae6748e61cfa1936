//! Execution receipts: a statement, signed by the host key, of what ran and
//! how it ended, that anyone holding the trust store can check and that
//! `runtime replay` can reproduce.
//!
//! A receipt names the exact module and manifest (by SHA-256), the arguments,
//! a hash of the environment values (values may be secrets), the effective
//! limits and guest paths (host paths are the host's business), whether the
//! run was deterministic, and the outcome: kind, exit status, fuel consumed and
//! the SHA-256 and length of each output stream.
//!
//! On disk a receipt is canonical JSON `{"receipt": {…}, "signature": "…"}`;
//! the signature is a minisign signature by the host key over
//! [`RECEIPT_SIGNATURE_DOMAIN`] followed by the canonical bytes of `receipt`,
//! so a receipt signature can never be mistaken for a module approval. The
//! receipt names the node that ran it (its checkpoint origin), and the
//! verifying key must be one of the trust store's `log_keys` bound to that
//! origin: another node's key cannot vouch for this node's runs.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signer::canonical::{CanonicalError, to_canonical_bytes};
use signer::minisign::{FormatError, LegacySignatures, SecretKey, Signature, SignatureError};
use signer::trust::{LogKeyRefusal, TrustStore};

use std::path::Path;

use wasmtime::Linker;

use crate::engine::NightEngine;
use crate::exec::{Determinism, HostState, Outcome};
use crate::pipeline::{ExecOptions, ExecReport, Refusal, VerificationStatus, exec_bundle};

/// The receipt format written by this version.
pub const RECEIPT_SCHEMA: &str = "nightcore.receipt.v2";
/// Prefix of every signed receipt message.
pub const RECEIPT_SIGNATURE_DOMAIN: &[u8] = b"nightcore-receipt-v1\0";
/// Receipt files larger than this are refused before parsing.
pub const MAX_RECEIPT_BYTES: usize = 256 * 1024;
/// Domain-separation tag of the environment hash.
const ENV_DOMAIN: &[u8] = b"nightcore-receipt-env-v1\0";

/// What ran and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub schema: String,
    /// The node that ran it: its checkpoint origin (`nightcore.toml`'s
    /// `origin`), which the signing log key must be bound to.
    pub origin: String,
    pub tenant: String,
    pub version: u64,
    pub module_sha256: String,
    pub manifest_sha256: String,
    /// `verified` or `danger_unverified`.
    pub verification: String,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// Names of the environment variables the guest saw.
    pub env_names: Vec<String>,
    /// SHA-256 over the canonical JSON of the name → value map.
    pub env_sha256: String,
    pub fuel_limit: u64,
    pub memory_mib: u32,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    /// Guest paths with `ro` or `rw`.
    pub preopens: Vec<String>,
    pub deterministic: bool,
    /// [`Outcome::kind`].
    pub outcome: String,
    pub exit_code: Option<i32>,
    /// Unknown (null) after a timeout.
    pub fuel_consumed: Option<u64>,
    pub stdout_sha256: String,
    pub stdout_bytes: u64,
    pub stderr_sha256: String,
    pub stderr_bytes: u64,
}

/// A receipt with its signature, as stored in a receipt file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    /// The minisign signature file text.
    pub signature: String,
}

/// Why a receipt could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("receipt is {size} bytes, over the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error("receipt is not valid JSON for {RECEIPT_SCHEMA}: {0}")]
    Json(String),
    #[error("receipt schema {found:?} is not {RECEIPT_SCHEMA:?}")]
    Schema { found: String },
    #[error("receipt signature is malformed: {0}")]
    MalformedSignature(FormatError),
    #[error("receipt is signed by key {key_id}, which is not a log key of the trust store")]
    UntrustedKey { key_id: String },
    #[error("receipt of node {origin:?} is signed by log key {key_id}, which may sign only for {bound:?}")]
    LogKeyOriginMismatch { key_id: String, origin: String, bound: Vec<String> },
    #[error("bad receipt signature: {0}")]
    BadSignature(SignatureError),
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl ReceiptError {
    /// A stable snake_case code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            ReceiptError::TooLarge { .. } | ReceiptError::Json(_) | ReceiptError::Schema { .. } => "malformed_receipt",
            ReceiptError::MalformedSignature(_) => "malformed_signature",
            ReceiptError::UntrustedKey { .. } => "untrusted_key",
            ReceiptError::LogKeyOriginMismatch { .. } => "log_key_origin_mismatch",
            ReceiptError::BadSignature(_) => "bad_signature",
            ReceiptError::Canonical(_) => "malformed_receipt",
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Receipt {
    /// The receipt of a finished run on the node of checkpoint origin `origin`.
    pub fn of(report: &ExecReport, origin: &str) -> Result<Self, ReceiptError> {
        let mut env_hash = Sha256::new();
        env_hash.update(ENV_DOMAIN);
        env_hash.update(to_canonical_bytes(&report.policy.env)?);
        let run = &report.run;
        Ok(Self {
            schema: RECEIPT_SCHEMA.to_string(),
            origin: origin.to_string(),
            tenant: report.facts.tenant.clone(),
            version: report.facts.version,
            module_sha256: report.facts.module_sha256.clone(),
            manifest_sha256: report.facts.manifest_sha256.clone(),
            verification: match report.facts.verification {
                VerificationStatus::Verified { .. } => "verified".to_string(),
                VerificationStatus::DangerUnverified => "danger_unverified".to_string(),
            },
            args: report.args.clone(),
            env_names: report.policy.env.keys().cloned().collect(),
            env_sha256: hex::encode(env_hash.finalize()),
            fuel_limit: report.policy.fuel,
            memory_mib: report.policy.memory_mib,
            timeout_ms: u64::try_from(report.policy.timeout.as_millis()).unwrap_or(u64::MAX),
            max_output_bytes: report.policy.max_output_bytes,
            preopens: report.policy.preopens.iter().map(|p| format!("{} {}", p.guest, p.mode.as_str())).collect(),
            deterministic: report.determinism == Determinism::Fixed,
            outcome: run.outcome.kind().to_string(),
            exit_code: match run.outcome {
                Outcome::Exited { code } => Some(code),
                _ => None,
            },
            fuel_consumed: run.fuel.consumed,
            stdout_sha256: sha256_hex(&run.stdout),
            stdout_bytes: run.stdout.len() as u64,
            stderr_sha256: sha256_hex(&run.stderr),
            stderr_bytes: run.stderr.len() as u64,
        })
    }

    fn signed_message(&self) -> Result<Vec<u8>, ReceiptError> {
        let mut message = RECEIPT_SIGNATURE_DOMAIN.to_vec();
        message.extend_from_slice(&to_canonical_bytes(self)?);
        Ok(message)
    }

    /// Signs the receipt with the host key.
    pub fn sign(self, host_key: &SecretKey) -> Result<SignedReceipt, ReceiptError> {
        let comment = format!("nightcore receipt tenant:{} module:{}", self.tenant, self.module_sha256);
        let signature = host_key.sign(&self.signed_message()?, &comment).map_err(ReceiptError::MalformedSignature)?;
        Ok(SignedReceipt { receipt: self, signature: signature.to_file_text() })
    }

    /// The fields a deterministic replay must reproduce, by name, where
    /// `self` and `other` differ.
    pub fn replay_differences(&self, other: &Receipt) -> Vec<&'static str> {
        let mut differences = Vec::new();
        let mut check = |name, same: bool| {
            if !same {
                differences.push(name);
            }
        };
        check("module_sha256", self.module_sha256 == other.module_sha256);
        check("manifest_sha256", self.manifest_sha256 == other.manifest_sha256);
        check("args", self.args == other.args);
        check("env_sha256", self.env_sha256 == other.env_sha256);
        check("outcome", self.outcome == other.outcome);
        check("exit_code", self.exit_code == other.exit_code);
        check("fuel_consumed", self.fuel_consumed == other.fuel_consumed);
        check("stdout_sha256", self.stdout_sha256 == other.stdout_sha256);
        check("stderr_sha256", self.stderr_sha256 == other.stderr_sha256);
        differences
    }
}

impl SignedReceipt {
    /// The canonical file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        let mut bytes = to_canonical_bytes(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Parses receipt file bytes (without checking the signature).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge { size: bytes.len(), max: MAX_RECEIPT_BYTES });
        }
        let signed: SignedReceipt = serde_json::from_slice(bytes).map_err(|e| ReceiptError::Json(e.to_string()))?;
        if signed.receipt.schema != RECEIPT_SCHEMA {
            return Err(ReceiptError::Schema { found: signed.receipt.schema });
        }
        Ok(signed)
    }

    /// Checks the signature against the trust store's log keys and returns
    /// the receipt it covers.
    pub fn verify(&self, trust: &TrustStore) -> Result<&Receipt, ReceiptError> {
        let signature =
            Signature::from_file_bytes(self.signature.as_bytes()).map_err(ReceiptError::MalformedSignature)?;
        let key = trust.log_key_for(signature.key_id, &self.receipt.origin).map_err(|refusal| match refusal {
            LogKeyRefusal::OriginNotBound { key_id, origin, bound } => {
                ReceiptError::LogKeyOriginMismatch { key_id: key_id.to_string(), origin, bound }
            }
            _ => ReceiptError::UntrustedKey { key_id: signature.key_id.to_string() },
        })?;
        key.verify(&self.receipt.signed_message()?, &signature, LegacySignatures::Refuse)
            .map_err(ReceiptError::BadSignature)?;
        Ok(&self.receipt)
    }
}

/// Why a replay could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("the receipt was not made with --deterministic, so its run cannot be replayed")]
    NotDeterministic,
    #[error(transparent)]
    Refused(Refusal),
    #[error(transparent)]
    Receipt(ReceiptError),
}

/// The result of replaying a receipt.
#[derive(Debug)]
pub struct Replay {
    pub report: ExecReport,
    /// The receipt of the replayed run.
    pub receipt: Receipt,
    /// Names of the fields that differ from the original receipt; empty when
    /// the run was reproduced.
    pub differences: Vec<&'static str>,
}

/// Runs the bundle in `dir` again, deterministically and with the receipt's
/// arguments, and compares the result with `original`. The bundle goes
/// through the full pipeline (verification included) under `options`.
pub fn replay(
    engine: &NightEngine,
    linker: &Linker<HostState>,
    original: &Receipt,
    dir: &Path,
    options: &ExecOptions<'_>,
) -> Result<Replay, ReplayError> {
    if !original.deterministic {
        return Err(ReplayError::NotDeterministic);
    }
    let options = ExecOptions { determinism: Determinism::Fixed, ..options.clone() };
    let report = exec_bundle(engine, linker, dir, &original.args, &options).map_err(ReplayError::Refused)?;
    let receipt = Receipt::of(&report, &original.origin).map_err(ReplayError::Receipt)?;
    let differences = original.replay_differences(&receipt);
    Ok(Replay { report, receipt, differences })
}
