//! The signing half of the pipeline: turn built modules into bundles under
//! `dist/<module>/<version>/`, sign them with a cold-storage key (or stop short
//! for the offline flow), and check signatures brought back from the offline
//! machine.
//!
//! A version number is a promise: once `dist/<module>/<version>/` exists, it
//! only ever gains signatures. Rebuilding the same version to different bytes
//! is refused, since those would be two different modules under one version.
//!
//! The build provenance statement (`dist/<module>/<version>.intoto.json`, see
//! [`crate::provenance`]) is born with the bundle and, like it, only gains
//! signatures: a later signer signs the statement already there, so that all
//! of a release's signers sign one payload.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

use signer::bundle::{BundleBytes, MANIFEST_FILE, ReadLimits, write_signature, write_unsigned};
use signer::manifest::{MANIFEST_SCHEMA, Manifest, format_rfc3339};
use signer::minisign::{KeyId, SecretKey};
use signer::trust::TrustStore;
use signer::verify::{VerifiedBundle, verify_bundle};

use crate::build::BuiltModule;
use crate::provenance;

/// What happened to one module's bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignedBundle {
    pub module: String,
    pub version: u64,
    pub bundle_dir: PathBuf,
    pub module_sha256: String,
    /// Lower-case hex SHA-256 of manifest.json.
    pub manifest_sha256: String,
    /// The key that signed in this run, if any (`None` with `--request-only`).
    pub signed_by: Option<KeyId>,
    /// Whether the bundle was created in this run (otherwise it existed already
    /// with the same module bytes and only gained a signature).
    pub created: bool,
    /// The build provenance statement beside the bundle, signed by `signed_by`
    /// too; `None` for a bundle made before statements existed.
    pub statement: Option<PathBuf>,
}

/// Writes (or reuses) the unsigned bundle of `built` in `dist_dir`, then signs
/// it with `key` when one is given.
pub fn bundle_and_sign(
    built: &BuiltModule,
    dist_dir: &Path,
    valid_days: u32,
    key: Option<&SecretKey>,
) -> Result<SignedBundle> {
    let dir = crate::verify::bundle_dir(dist_dir, &built.name, built.version);
    let module = std::fs::read(&built.wasm_path).with_context(|| format!("reading {}", built.wasm_path.display()))?;
    let (created, statement) = if dir.exists() {
        let existing = BundleBytes::read(&dir, &ReadLimits::default())?;
        let manifest = Manifest::from_bytes(&existing.manifest)
            .with_context(|| format!("existing bundle {} has a bad manifest", dir.display()))?;
        if manifest.module != built.digest() {
            bail!(
                "{} version {} is already bundled at {} with module sha256 {}, but this build is sha256 {}: \
                 raise [package.metadata.nightcore] version for a new release",
                built.name,
                built.version,
                dir.display(),
                manifest.module.sha256,
                built.sha256
            );
        }
        (false, provenance::sign_existing(&dir, &manifest, key)?)
    } else {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(valid_days));
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.to_string(),
            name: built.name.clone(),
            version: built.version,
            version_label: built.version_label.clone(),
            module: built.digest(),
            expires: format_rfc3339(expires),
            provenance: built.provenance.clone(),
            capabilities: built.capabilities.clone(),
        };
        // The statement first: a bundle directory without its statement beside
        // it would look like one made before statements existed.
        let statement = provenance::envelope_path(&dir);
        provenance::write_envelope(&statement, &provenance::envelope_for(built, key)?)?;
        write_unsigned(&dir, &module, &manifest)?;
        (true, Some(statement))
    };
    let manifest_bytes = std::fs::read(dir.join(MANIFEST_FILE))?;
    let signed_by = match key {
        Some(key) => {
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let signature =
                key.sign(&manifest_bytes, &format!("timestamp:{timestamp}\tfile:manifest.json\tprehashed"))?;
            write_signature(&dir, &signature)?;
            Some(key.key_id())
        }
        None => None,
    };
    Ok(SignedBundle {
        module: built.name.clone(),
        version: built.version,
        bundle_dir: dir,
        module_sha256: built.sha256.clone(),
        manifest_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&manifest_bytes)),
        signed_by,
        created,
        statement,
    })
}

/// Verifies a bundle whose signatures came back from the offline machine.
pub fn check_attached(bundle_dir: &Path, trust: &TrustStore) -> Result<VerifiedBundle> {
    let bytes = BundleBytes::read(bundle_dir, &ReadLimits::default())?;
    verify_bundle(bytes, trust, time::OffsetDateTime::now_utc())
        .with_context(|| format!("bundle {} does not verify", bundle_dir.display()))
}
