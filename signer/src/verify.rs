//! Bundle verification: the single decision every component relies on.
//!
//! The order of checks is fixed and each failure is its own error kind:
//! 1. signatures over the raw manifest bytes (no parsing of unauthenticated
//!    content is needed for this): malformed signature files, revoked keys and
//!    invalid signatures by trusted keys fail at once; signatures by unknown keys
//!    are ignored but remembered for the error message;
//! 2. the manifest is parsed (size-capped, canonical) and its tenant's key set
//!    and threshold applied, counting *distinct* key ids;
//! 3. the module's size is compared with the manifest before it is hashed, then
//!    its SHA-256;
//! 4. expiry.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use crate::bundle::BundleBytes;
use crate::manifest::{Manifest, ManifestError, format_rfc3339};
use crate::minisign::{FormatError, KeyId, LegacySignatures, Signature, SignatureError};
use crate::trust::{Shortfall, TrustStore};

/// A bundle that passed every check. Holds the very bytes that were verified, so
/// that callers execute or store exactly those.
///
/// Its fields are private and only this module makes one ([`verify_bundle`],
/// and [`danger_accept_unsigned`] for the explicit no-signature mode), so no
/// other code can pair a manifest with bytes or hashes that were not checked
/// together.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    module: Vec<u8>,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    module_sha256: String,
    manifest_sha256: String,
    signers: Vec<KeyId>,
}

impl VerifiedBundle {
    /// The module bytes whose hash the manifest states.
    pub fn module(&self) -> &[u8] {
        &self.module
    }

    /// The manifest, parsed from [`Self::manifest_bytes`].
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest exactly as signed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Lower-case hex SHA-256 of [`Self::module`].
    pub fn module_sha256(&self) -> &str {
        &self.module_sha256
    }

    /// Lower-case hex SHA-256 of [`Self::manifest_bytes`].
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The distinct trusted keys whose signatures counted, sorted; empty for
    /// [`danger_accept_unsigned`].
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    fn new(bundle: BundleBytes, manifest: Manifest, module_sha256: String, signers: Vec<KeyId>) -> Self {
        VerifiedBundle {
            module: bundle.module,
            manifest_sha256: hex::encode(Sha256::digest(&bundle.manifest)),
            manifest_bytes: bundle.manifest,
            manifest,
            module_sha256,
            signers,
        }
    }
}

/// The no-signature mode (`runtime exec --danger-allow-unsigned`): no
/// signature, trust rule, size, hash or expiry is checked, but the manifest is
/// parsed from these bytes (its capabilities still bound the run) and the
/// hashes are computed from them, so the result describes exactly these bytes.
pub fn danger_accept_unsigned(bundle: BundleBytes) -> Result<VerifiedBundle, ManifestError> {
    let manifest = Manifest::from_bytes(&bundle.manifest)?;
    let module_sha256 = hex::encode(Sha256::digest(&bundle.module));
    Ok(VerifiedBundle::new(bundle, manifest, module_sha256, Vec::new()))
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("bundle is unsigned: no signature files in signatures/")]
    Unsigned,
    #[error("signature file {file} is malformed: {source}")]
    MalformedSignature { file: String, source: FormatError },
    #[error("signature by key {key_id} is not in the trust store")]
    UntrustedKey { key_id: KeyId },
    #[error("key {key_id} is trusted but not allowed to approve tenant {tenant}")]
    KeyNotAllowedForTenant { key_id: KeyId, tenant: String },
    #[error("key {key_id} is a log key: it signs audit checkpoints and receipts, never modules")]
    LogKeyCannotApprove { key_id: KeyId },
    #[error("signature by revoked key {key_id}")]
    RevokedKey { key_id: KeyId },
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    #[error("threshold not met: {valid} distinct trusted signature(s), {required} required")]
    ThresholdNotMet { required: usize, valid: usize },
    #[error("manifest is malformed: {0}")]
    MalformedManifest(ManifestError),
    #[error("module size mismatch: manifest says {expected} bytes, module.wasm is {found}")]
    SizeMismatch { expected: u64, found: u64 },
    #[error("module hash mismatch: manifest says sha256 {expected}, module.wasm has {found}")]
    HashMismatch { expected: String, found: String },
    #[error("bundle expired at {expires} (now {now})")]
    Expired { expires: String, now: String },
}

impl VerifyError {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            VerifyError::Unsigned => "unsigned",
            VerifyError::MalformedSignature { .. } => "malformed_signature",
            VerifyError::UntrustedKey { .. } => "untrusted_key",
            VerifyError::KeyNotAllowedForTenant { .. } => "key_not_allowed_for_tenant",
            VerifyError::LogKeyCannotApprove { .. } => "log_key_cannot_approve",
            VerifyError::RevokedKey { .. } => "revoked_key",
            VerifyError::BadSignature(_) => "bad_signature",
            VerifyError::ThresholdNotMet { .. } => "threshold_not_met",
            VerifyError::MalformedManifest(_) => "malformed_manifest",
            VerifyError::SizeMismatch { .. } => "size_mismatch",
            VerifyError::HashMismatch { .. } => "hash_mismatch",
            VerifyError::Expired { .. } => "expired",
        }
    }
}

/// Verifies `bundle` against `trust` at time `now`. Takes the bytes by value and
/// hands them back inside [`VerifiedBundle`], so that what runs is what was checked
/// and no copy of a large module is made.
pub fn verify_bundle(
    bundle: BundleBytes,
    trust: &TrustStore,
    now: time::OffsetDateTime,
) -> Result<VerifiedBundle, VerifyError> {
    if bundle.signatures.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    let mut valid = BTreeSet::new();
    let mut first_untrusted = None;
    for file in &bundle.signatures {
        let signature = Signature::from_file_bytes(&file.bytes)
            .map_err(|source| VerifyError::MalformedSignature { file: file.file_name.clone(), source })?;
        let key_id = signature.key_id;
        if trust.is_revoked(key_id) {
            return Err(VerifyError::RevokedKey { key_id });
        }
        let Some(key) = trust.key(key_id) else {
            first_untrusted.get_or_insert(key_id);
            continue;
        };
        key.verify(&bundle.manifest, &signature, LegacySignatures::Refuse).map_err(VerifyError::BadSignature)?;
        valid.insert(key_id);
    }

    let manifest = Manifest::from_bytes(&bundle.manifest).map_err(VerifyError::MalformedManifest)?;
    let counted = trust.approvals(valid, &manifest.name, first_untrusted).map_err(|shortfall| match shortfall {
        Shortfall::LogKeyCannotApprove { key_id } => VerifyError::LogKeyCannotApprove { key_id },
        Shortfall::KeyNotAllowedForTenant { key_id } => {
            VerifyError::KeyNotAllowedForTenant { key_id, tenant: manifest.name.clone() }
        }
        Shortfall::Untrusted(key_id) => VerifyError::UntrustedKey { key_id },
        Shortfall::ThresholdNotMet { required, valid } => VerifyError::ThresholdNotMet { required, valid },
    })?;

    let found_size = bundle.module.len() as u64;
    if found_size != manifest.module.size {
        return Err(VerifyError::SizeMismatch { expected: manifest.module.size, found: found_size });
    }
    let module_sha256 = hex::encode(Sha256::digest(&bundle.module));
    if module_sha256 != manifest.module.sha256 {
        return Err(VerifyError::HashMismatch { expected: manifest.module.sha256.clone(), found: module_sha256 });
    }
    let expires = manifest.expires_at().map_err(VerifyError::MalformedManifest)?;
    if now >= expires {
        return Err(VerifyError::Expired { expires: manifest.expires.clone(), now: format_rfc3339(now) });
    }
    Ok(VerifiedBundle::new(bundle, manifest, module_sha256, counted.into_iter().collect()))
}
