//! The one decision the guardian makes about changed bytes: a valid upgrade
//! to accept, or a refusal naming exactly why.
//!
//! A deployed bundle is accepted only if all of these hold, checked in this
//! order: the tenant path is a real directory with a valid tenant name;
//! `module.wasm`, `manifest.json` and every `signatures/*.minisig` are regular
//! files (no links) that could be read within their size caps, or
//! `module.wasm` alone carries them in its bundle section (the single-file
//! form, `signer::embed`, judged exactly the same way once unpacked); the bundle
//! verifies against the trust store (the threshold of distinct trusted keys,
//! revocations, expiry: see `signer::verify`); the manifest names the tenant
//! directory it is deployed in; and its version is above the tenant's
//! rollback floor. An older, validly signed version is a downgrade attack;
//! the same version with different bytes is refused as well, so re-signing
//! a release needs a new version number.
//!
//! Only the bundle files are judged here. Layout problems that do not change
//! those bytes (a file left beside them, a mode that lets others write) are
//! repaired by restoring the accepted version, not refused.

use std::collections::BTreeMap;

use signer::bundle::{AssembleError, MANIFEST_FILE, MODULE_FILE, ReadLimits};
use signer::embed::EmbedError;
use signer::trust::TrustStore;
use signer::verify::{VerifiedBundle, VerifyError, verify_bundle};

use crate::snapshot::{EntryKind, SnapshotEntry, TenantSnapshot, is_bundle_file};
use crate::state::{RetiredTenant, TenantRecord};
use crate::store::BundleFiles;

/// Why changed bytes were not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("the bundle directory is gone")]
    BundleMissing,
    #[error("version {found} is a downgrade: version {floor} was accepted already")]
    DowngradeRefused { found: u64, floor: u64 },
    #[error("the tenant was retired at version {floor}: version {found} cannot bring it back, only a newer one")]
    Retired { found: u64, floor: u64 },
    #[error("{path} is missing")]
    FileMissing { path: String },
    #[error("{name:?} is not a valid tenant name")]
    InvalidTenantName { name: String },
    #[error("a new tenant {name} appeared and new tenants are refused")]
    NewTenantRefused { name: String },
    #[error("{path} is a {kind}, not a {expected}")]
    NotAFile { path: String, kind: &'static str, expected: &'static str },
    #[error("version {version} was accepted with other bytes: the same version with different bytes is refused")]
    SameVersionDifferentBytes { version: u64 },
    #[error("{path}: {source}")]
    SingleFile { path: String, source: EmbedError },
    #[error("{path} is a symlink")]
    Symlink { path: String },
    #[error("manifest is for tenant {manifest_name} but the bundle is deployed as {directory}")]
    TenantMismatch { directory: String, manifest_name: String },
    #[error("{path} has more than {max} signature files")]
    TooManySignatures { path: String, max: usize },
    #[error("{path} cannot be read: {problem}")]
    Unreadable { path: String, problem: String },
    #[error("{path} is {size} bytes, over the {max}-byte cap")]
    FileTooLarge { path: String, size: u64, max: u64 },
    #[error(transparent)]
    Verify(VerifyError),
}

impl Refusal {
    /// A stable snake_case code for JSON output and audit events; verification
    /// failures keep the signer's own code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::BundleMissing => "bundle_missing",
            Refusal::DowngradeRefused { .. } => "downgrade",
            Refusal::Retired { .. } => "tenant_retired",
            Refusal::FileMissing { .. } => "file_missing",
            Refusal::InvalidTenantName { .. } => "invalid_tenant_name",
            Refusal::NewTenantRefused { .. } => "new_tenant_refused",
            Refusal::NotAFile { .. } => "not_a_file",
            Refusal::SameVersionDifferentBytes { .. } => "same_version_different_bytes",
            Refusal::SingleFile { source, .. } => source.reason_code(),
            Refusal::Symlink { .. } => "symlink",
            Refusal::TenantMismatch { .. } => "tenant_mismatch",
            Refusal::TooManySignatures { .. } => "too_many_signatures",
            Refusal::Unreadable { .. } => "unreadable",
            Refusal::FileTooLarge { .. } => "file_too_large",
            Refusal::Verify(e) => e.reason_code(),
        }
    }
}

/// Whether a tenant the state does not know may be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Admission {
    /// A new tenant whose bundle verifies is accepted (trust on first
    /// verification: it is signed by the threshold of trusted keys).
    #[default]
    AcceptSigned,
    /// New tenants are refused and quarantined.
    Refuse,
}

/// A bundle that may replace the tenant's last verified version.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub files: BundleFiles,
    pub verified: VerifiedBundle,
}

/// What the state knows of a tenant: the floor a bundle is judged against.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// In service at this verified version.
    Current(&'a TenantRecord),
    /// Retired: versions up to and including the floor are refused.
    Retired(&'a RetiredTenant),
    /// Never seen.
    New,
}

/// Judges the bundle files of `snapshot`, deployed as `tenant`, against the
/// trust store and what the state knows of the tenant.
///
/// Once the files pass the checks of their kinds, sizes and number, their
/// bytes are moved out of the snapshot (which keeps their records): a judged
/// module is then held twice (the accepted files and the verified bundle),
/// not three times, which is what bounds a scan of large junk modules.
pub fn evaluate(
    tenant: &str,
    snapshot: &mut TenantSnapshot,
    known: Known<'_>,
    admission: Admission,
    trust: &TrustStore,
    limits: &ReadLimits,
    now: time::OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let entries = match snapshot {
        TenantSnapshot::Missing => return Err(Refusal::BundleMissing),
        TenantSnapshot::NotADirectory { kind: EntryKind::Symlink } => {
            return Err(Refusal::Symlink { path: tenant.to_string() });
        }
        TenantSnapshot::NotADirectory { kind } => {
            return Err(Refusal::NotAFile { path: tenant.to_string(), kind: kind.label(), expected: "directory" });
        }
        TenantSnapshot::Directory { entries, .. } => entries,
    };
    if signer::manifest::validate_name(tenant).is_err() {
        return Err(Refusal::InvalidTenantName { name: tenant.to_string() });
    }
    // A retired name coming back is a new tenant to the admission rule.
    if !matches!(known, Known::Current(_)) && admission == Admission::Refuse {
        return Err(Refusal::NewTenantRefused { name: tenant.to_string() });
    }
    if !entries.contains_key(MODULE_FILE) {
        return Err(Refusal::FileMissing { path: format!("{tenant}/{MODULE_FILE}") });
    }
    let mut signatures = 0;
    let mut names = Vec::new();
    for (rel, entry) in entries.iter().filter(|(rel, _)| is_bundle_file(rel)) {
        let path = format!("{tenant}/{rel}");
        match entry.kind {
            EntryKind::File => {}
            EntryKind::Symlink => return Err(Refusal::Symlink { path }),
            kind => return Err(Refusal::NotAFile { path, kind: kind.label(), expected: "file" }),
        }
        if entry.bytes().is_none() {
            if let Some(size) = entry.too_large {
                return Err(Refusal::FileTooLarge { path, size, max: crate::snapshot::read_cap(rel, limits) });
            }
            let problem = entry.problem.clone().unwrap_or_else(|| "unreadable".into());
            return Err(Refusal::Unreadable { path, problem });
        }
        if rel != MODULE_FILE && rel != MANIFEST_FILE {
            signatures += 1;
            if signatures > limits.max_signatures {
                return Err(Refusal::TooManySignatures {
                    path: format!("{tenant}/signatures"),
                    max: limits.max_signatures,
                });
            }
        }
        names.push(rel.clone());
    }
    let files: BTreeMap<String, Vec<u8>> = names
        .into_iter()
        .map(|rel| {
            let bytes = entries.get_mut(&rel).and_then(SnapshotEntry::take_bytes).unwrap_or_default();
            (rel, bytes)
        })
        .collect();
    let files = BundleFiles::new(files)
        .map_err(|e| Refusal::Unreadable { path: tenant.to_string(), problem: e.to_string() })?;
    // `module.wasm` without manifest or signature files is the single-file
    // form: the signer's rule decides, as for every other reader.
    let module_path = format!("{tenant}/{MODULE_FILE}");
    let bytes = files.to_bundle_bytes(limits).map_err(|e| match e {
        AssembleError::ManifestMissing => Refusal::FileMissing { path: format!("{tenant}/{MANIFEST_FILE}") },
        AssembleError::ModuleTooLarge { size, max } => Refusal::FileTooLarge { path: module_path.clone(), size, max },
        AssembleError::SingleFile(source) => Refusal::SingleFile { path: module_path.clone(), source },
    })?;
    let verified = verify_bundle(bytes, trust, now).map_err(Refusal::Verify)?;
    if verified.manifest().name != tenant {
        return Err(Refusal::TenantMismatch {
            directory: tenant.to_string(),
            manifest_name: verified.manifest().name.clone(),
        });
    }
    let found = verified.manifest().version;
    match known {
        Known::Current(current) => {
            if found < current.floor {
                return Err(Refusal::DowngradeRefused { found, floor: current.floor });
            }
            if found == current.floor && files.digest() != current.digest {
                return Err(Refusal::SameVersionDifferentBytes { version: found });
            }
        }
        Known::Retired(retired) if found <= retired.floor => {
            return Err(Refusal::Retired { found, floor: retired.floor });
        }
        Known::Retired(_) | Known::New => {}
    }
    Ok(Accepted { files, verified })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;
    use signer::minisign::SignatureError;

    fn judge(kit: &Kit, tenant: &str, current: Option<&TenantRecord>) -> Result<Accepted, Refusal> {
        judge_known(kit, tenant, current.map_or(Known::New, Known::Current))
    }

    fn judge_known(kit: &Kit, tenant: &str, known: Known<'_>) -> Result<Accepted, Refusal> {
        let trust = TrustStore::load(&kit.trust()).unwrap();
        let mut snapshot = TenantSnapshot::take(&kit.deploy().join(tenant), &ReadLimits::default()).unwrap();
        evaluate(
            tenant,
            &mut snapshot,
            known,
            Admission::AcceptSigned,
            &trust,
            &ReadLimits::default(),
            time::OffsetDateTime::now_utc(),
        )
    }

    fn record(accepted: &Accepted) -> TenantRecord {
        TenantRecord {
            version: accepted.verified.manifest().version,
            version_label: String::new(),
            floor: accepted.verified.manifest().version,
            digest: accepted.files.digest(),
            manifest_sha256: accepted.verified.manifest_sha256().to_string(),
            module_sha256: accepted.verified.module_sha256().to_string(),
            files: accepted.files.records(),
            signers: Vec::new(),
            accepted_at: String::new(),
            previous: Vec::new(),
        }
    }

    /// The memory bound of a scan counts on this: judged bytes move out of
    /// the snapshot instead of being copied, and its records stay.
    #[test]
    fn judging_moves_the_bundle_bytes_out_of_the_snapshot() {
        let kit = Kit::new("threshold = 1\n");
        kit.deploy_bundle("alpha", 1, &[0]);
        let trust = TrustStore::load(&kit.trust()).unwrap();
        let mut snapshot = TenantSnapshot::take(&kit.deploy().join("alpha"), &ReadLimits::default()).unwrap();
        let records = snapshot.content_records();
        let module = snapshot.entries().unwrap()[MODULE_FILE].bytes().unwrap().to_vec();
        let now = time::OffsetDateTime::now_utc();
        let accepted =
            evaluate("alpha", &mut snapshot, Known::New, Admission::AcceptSigned, &trust, &ReadLimits::default(), now)
                .unwrap();
        let entries = snapshot.entries().unwrap();
        let held: Vec<&String> = entries.iter().filter(|(_, e)| e.bytes().is_some()).map(|(rel, _)| rel).collect();
        assert!(held.is_empty(), "still in the snapshot: {held:?}");
        assert_eq!(snapshot.content_records(), records);
        assert_eq!(accepted.files.files()[MODULE_FILE], module);
        assert_eq!(accepted.verified.module(), &module[..]);
    }

    #[test]
    fn a_retired_tenant_comes_back_only_above_its_floor() {
        let kit = Kit::new("threshold = 1\n");
        let retired = RetiredTenant { version: 2, floor: 3, retired_at: String::new() };
        for old in [1, 3] {
            kit.replace_bundle("alpha", old, &[0]);
            let refusal = judge_known(&kit, "alpha", Known::Retired(&retired)).unwrap_err();
            assert_eq!(refusal, Refusal::Retired { found: old, floor: 3 });
            assert_eq!(refusal.reason_code(), "tenant_retired");
        }
        kit.replace_bundle("alpha", 4, &[0]);
        assert_eq!(judge_known(&kit, "alpha", Known::Retired(&retired)).unwrap().verified.manifest().version, 4);
    }

    #[test]
    fn upgrades_must_be_newer_and_signed_by_the_threshold() {
        let kit = Kit::new("threshold = 2\n");
        kit.deploy_bundle("alpha", 2, &[0, 1]);
        let v2 = record(&judge(&kit, "alpha", None).unwrap());
        kit.replace_bundle("alpha", 3, &[0, 2]);
        assert_eq!(judge(&kit, "alpha", Some(&v2)).unwrap().verified.manifest().version, 3);
        kit.replace_bundle("alpha", 1, &[0, 1]);
        assert_eq!(judge(&kit, "alpha", Some(&v2)).unwrap_err(), Refusal::DowngradeRefused { found: 1, floor: 2 });
        kit.replace_bundle("alpha", 2, &[0, 2]);
        assert_eq!(judge(&kit, "alpha", Some(&v2)).unwrap_err(), Refusal::SameVersionDifferentBytes { version: 2 });
        kit.replace_bundle("alpha", 3, &[1]);
        assert_eq!(judge(&kit, "alpha", Some(&v2)).unwrap_err().reason_code(), "threshold_not_met");
    }

    #[test]
    fn revoked_key_and_tampered_bytes_keep_the_signer_reason() {
        let kit = Kit::new("threshold = 1\n");
        let revoked = kit.keys[2].key_id();
        kit.set_trust(&format!("threshold = 1\nrevoked = [\"{revoked}\"]\n"));
        kit.deploy_bundle("alpha", 1, &[0, 2]);
        assert_eq!(
            judge(&kit, "alpha", None).unwrap_err(),
            Refusal::Verify(VerifyError::RevokedKey { key_id: revoked })
        );
        kit.replace_bundle("alpha", 1, &[0]);
        let manifest = kit.deploy().join("alpha/manifest.json");
        let text = std::fs::read_to_string(&manifest).unwrap().replace("1.0.0", "9.0.0");
        std::fs::write(&manifest, text).unwrap();
        assert_eq!(
            judge(&kit, "alpha", None).unwrap_err(),
            Refusal::Verify(VerifyError::BadSignature(SignatureError::Invalid { key_id: kit.keys[0].key_id() }))
        );
    }

    #[test]
    fn one_signature_copied_under_two_names_counts_once() {
        let kit = Kit::new("threshold = 2\n");
        let dir = kit.deploy_bundle("alpha", 1, &[0]);
        let sig = std::fs::read_dir(dir.join("signatures")).unwrap().next().unwrap().unwrap().path();
        std::fs::copy(&sig, dir.join("signatures/copy.minisig")).unwrap();
        assert_eq!(
            judge(&kit, "alpha", None).unwrap_err(),
            Refusal::Verify(VerifyError::ThresholdNotMet { required: 2, valid: 1 })
        );
    }

    #[test]
    fn a_bundle_deployed_under_another_tenant_name_is_refused() {
        let kit = Kit::new("threshold = 1\n");
        kit.bundle_at(&kit.deploy().join("beta"), "alpha", 1, &[0]);
        assert_eq!(
            judge(&kit, "beta", None).unwrap_err(),
            Refusal::TenantMismatch { directory: "beta".into(), manifest_name: "alpha".into() }
        );
    }

    #[test]
    fn links_and_missing_files_are_refused_before_verification() {
        let kit = Kit::new("threshold = 1\n");
        let dir = kit.deploy_bundle("alpha", 1, &[0]);
        std::fs::rename(dir.join("module.wasm"), kit.root.join("m")).unwrap();
        assert_eq!(judge(&kit, "alpha", None).unwrap_err(), Refusal::FileMissing { path: "alpha/module.wasm".into() });
        std::os::unix::fs::symlink(kit.root.join("m"), dir.join("module.wasm")).unwrap();
        assert_eq!(judge(&kit, "alpha", None).unwrap_err(), Refusal::Symlink { path: "alpha/module.wasm".into() });
        std::fs::write(kit.deploy().join("Bad Name"), b"x").unwrap();
        assert_eq!(judge(&kit, "Bad Name", None).unwrap_err().reason_code(), "not_a_file");
    }
}
