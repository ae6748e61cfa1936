//! Checks that a signed module is what its source builds to: load the bundle
//! from `dist/<module>/<version>/`, rebuild the module from a fresh copy of the
//! source at another path with its own target directory, and compare.
//!
//! Rebuilding somewhere else on purpose is the point: a build that only
//! reproduces in the directory it was made in would hide leaked paths.
//!
//! The build provenance statement beside the bundle is checked before the
//! rebuild (see [`crate::provenance::check_statement`]) and compared with the
//! rebuild's inputs after it.

use anyhow::{Context, Result, bail, ensure};
use signer::bundle::{BundleBytes, ReadLimits};
use signer::manifest::{Manifest, ModuleDigest, Provenance};
use signer::trust::TrustStore;
use std::path::{Path, PathBuf};

use crate::build::{self, BuildOptions, BuiltModule, ModuleCrate};
use crate::progress::Progress;
use crate::provenance::{BuildInputs, StatementReport, StatementRequirement, check_statement};
use crate::rebuild::{self, Artifact, RebuildReport};
use crate::source_tree;
use crate::toolchain::Toolchain;

pub use signer::bundle::{MANIFEST_FILE, MODULE_FILE};
/// Default bundle directory, under the workspace root.
pub const DIST_DIR: &str = "dist";

/// Where and how to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The modules workspace the rebuild is copied from.
    pub modules_dir: PathBuf,
    /// Root of the bundles: `<dist_dir>/<module>/<version>/`.
    pub dist_dir: PathBuf,
    /// Parent of the temporary rebuild directory; `None` is the system's.
    pub scratch_parent: Option<PathBuf>,
    /// `CARGO_HOME` of the rebuild; `None` keeps the caller's.
    pub cargo_home: Option<PathBuf>,
    /// Trust store the bundle's signatures are checked against; `None` checks
    /// only that the bundle is consistent (the manifest pins the module bytes).
    pub trust: Option<TrustStore>,
    /// Audit log that records a `module.rebuilt` event per module.
    /// Where `module.rebuilt` is recorded, with this node's host key.
    pub audit_log: Option<audit::HostLog>,
    /// Whether a bundle without a (signed) provenance statement fails.
    pub statement: StatementRequirement,
    pub progress: Progress,
}

/// The bundle's signatures do not verify: a definite "no" (exit 1), unlike the
/// I/O and build errors that make verification impossible (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("the signed bundle does not verify: {0}")]
pub struct UnverifiedBundle(pub signer::verify::VerifyError);

/// The build provenance statement beside the bundle is a definite "no"
/// (exit 1): unreadable, about other bytes, disagreeing with the manifest,
/// signed by keys that do not verify, or absent when one is required.
#[derive(Debug, thiserror::Error)]
#[error(
    "the build provenance statement {} does not verify: {}",
    .0.path.display(),
    .0.failure(StatementRequirement::Required).unwrap_or_default()
)]
pub struct UnverifiedStatement(pub StatementReport);

/// A bundle read from disk whose `module.wasm` matches its manifest.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    /// The parsed `manifest.json`.
    pub manifest: Manifest,
    /// Everything read from the bundle directory (module, manifest, signatures).
    pub bytes: BundleBytes,
}

/// `<dist_dir>/<name>/<version>`.
pub fn bundle_dir(dist_dir: &Path, name: &str, version: u64) -> PathBuf {
    dist_dir.join(name).join(version.to_string())
}

/// Reads the bundle of `name` at `version` and checks that it is consistent:
/// the manifest parses, names this module and version, and pins the bytes of
/// `module.wasm`.
pub fn load_bundle(dist_dir: &Path, name: &str, version: u64, trust: Option<&TrustStore>) -> Result<Bundle> {
    let dir = bundle_dir(dist_dir, name, version);
    if !dir.is_dir() {
        let available = available_versions(&dist_dir.join(name));
        let hint = if available.is_empty() {
            "no version of it is signed there".to_owned()
        } else {
            format!("signed versions there: {}", available.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
        };
        bail!("no bundle for {name} version {version} at {} ({hint})", dir.display());
    }
    // Read once, size-capped; everything below works on these bytes only, so
    // the files cannot change between the checks and the comparison.
    let bytes = BundleBytes::read(&dir, &ReadLimits::default())
        .with_context(|| format!("cannot read the bundle {}", dir.display()))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest =
        Manifest::from_bytes(&bytes.manifest).with_context(|| format!("bad manifest {}", manifest_path.display()))?;
    ensure!(
        manifest.name == name && manifest.version == version,
        "{} is for {} version {}, not {name} version {version}",
        manifest_path.display(),
        manifest.name,
        manifest.version
    );

    if let Some(trust) = trust {
        signer::verify::verify_bundle(bytes.clone(), trust, time::OffsetDateTime::now_utc())
            .map_err(UnverifiedBundle)?;
    }

    let digest = ModuleDigest::of(&bytes.module);
    ensure!(
        digest == manifest.module,
        "{} (sha256 {}, {} bytes) does not match its manifest (sha256 {}, {} bytes): the bundle is corrupt or was tampered with",
        dir.join(MODULE_FILE).display(),
        digest.sha256,
        digest.size,
        manifest.module.sha256,
        manifest.module.size
    );
    Ok(Bundle { dir, manifest, bytes })
}

fn available_versions(module_dir: &Path) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(module_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions
}

/// The outcome of verifying one module.
#[derive(Debug, Clone)]
pub struct Verification {
    pub module: String,
    pub version: u64,
    pub bundle_dir: PathBuf,
    pub report: RebuildReport,
    /// The provenance statement beside the bundle, its recorded inputs
    /// compared with the rebuild's.
    pub statement: StatementReport,
}

/// Verifies the signed bundle of the version of `module` that its source
/// declares. `toolchain` and `module` come from
/// [`build::discover_workspace_modules`] over `options.modules_dir`.
pub fn verify_module(options: &VerifyOptions, toolchain: &Toolchain, module: &ModuleCrate) -> Result<Verification> {
    let version = module.metadata.version;
    let bundle = load_bundle(&options.dist_dir, &module.name, version, options.trust.as_ref())?;
    let mut statement = check_statement(&bundle.dir, &bundle.manifest, options.trust.as_ref())?;
    if statement.failure(options.statement).is_some() {
        return Err(UnverifiedStatement(statement).into());
    }
    let outcome = rebuild(options, toolchain, module, &bundle.bytes.module, &bundle.manifest.provenance)?;
    statement.compare_with(&BuildInputs::of_build(&outcome.rebuilt));
    let report = outcome.report;
    if let Some(log) = &options.audit_log {
        crate::events::module_rebuilt(log, &module.name, version, &report, &statement)?;
    }

    Ok(Verification { module: module.name.clone(), version, bundle_dir: bundle.dir, report, statement })
}

/// A rebuild and how it compares.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub report: RebuildReport,
    /// What the rebuild made and with which inputs (its `wasm_path` is gone
    /// with the temporary directory).
    pub rebuilt: BuiltModule,
}

/// Rebuilds `module` from a copy of the modules workspace in a new temporary
/// directory, with the recorded build timestamp, and compares the result with
/// `expected`.
pub fn rebuild_and_compare(
    options: &VerifyOptions,
    toolchain: &Toolchain,
    module: &ModuleCrate,
    expected: &[u8],
    recorded: &Provenance,
) -> Result<RebuildReport> {
    Ok(rebuild(options, toolchain, module, expected, recorded)?.report)
}

/// [`rebuild_and_compare`], also returning what the rebuild made.
pub fn rebuild(
    options: &VerifyOptions,
    toolchain: &Toolchain,
    module: &ModuleCrate,
    expected: &[u8],
    recorded: &Provenance,
) -> Result<Rebuild> {
    let name = &module.name;
    let scratch_parent = match &options.scratch_parent {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    let scratch = tempfile::Builder::new()
        .prefix("nightcore-rebuild-")
        .tempdir_in(&scratch_parent)
        .with_context(|| format!("cannot create a rebuild directory in {}", scratch_parent.display()))?;
    let copy = scratch.path().join("modules");
    options.progress.step(format_args!("copying {} to {}", options.modules_dir.display(), copy.display()));
    source_tree::copy_workspace(&options.modules_dir, &copy)?;
    let original =
        options.modules_dir.canonicalize().with_context(|| format!("cannot find {}", options.modules_dir.display()))?;
    ensure!(copy.canonicalize()? != original, "the rebuild directory must differ from the source directory");

    let build_options = BuildOptions {
        modules_dir: copy,
        target_dir: scratch.path().join("target"),
        out_dir: scratch.path().join("out"),
        source_date_epoch: Some(recorded.source_date_epoch),
        // The copy is not a git checkout; the commit is that of the source it came from.
        commit: Some(build::git_head(&original).unwrap_or_default()),
        cargo_home: options.cargo_home.clone(),
        progress: options.progress,
    };
    // The copy is exact, so what was discovered in the original holds for it.
    let built = build::build_discovered(&build_options, toolchain, vec![module.clone()])?;
    let Ok([built]) = <[BuiltModule; 1]>::try_from(built) else {
        bail!("the rebuild of {name} did not produce exactly one module");
    };
    let actual =
        std::fs::read(&built.wasm_path).with_context(|| format!("cannot read {}", built.wasm_path.display()))?;
    let report = rebuild::compare(
        Artifact { bytes: expected, provenance: recorded },
        Artifact { bytes: &actual, provenance: &built.provenance },
    );
    Ok(Rebuild { report, rebuilt: built })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signer::manifest::{Capabilities, MANIFEST_SCHEMA};

    fn manifest_for(name: &str, version: u64, module: &[u8]) -> Manifest {
        Manifest {
            schema: MANIFEST_SCHEMA.to_owned(),
            name: name.to_owned(),
            version,
            version_label: "0.1.0".to_owned(),
            module: ModuleDigest::of(module),
            expires: "2099-01-01T00:00:00Z".to_owned(),
            provenance: Provenance::default(),
            capabilities: Capabilities::default(),
        }
    }

    fn write_bundle(dist: &Path, manifest: &Manifest, module: &[u8]) {
        let dir = bundle_dir(dist, &manifest.name, manifest.version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), manifest.to_canonical_bytes().unwrap()).unwrap();
        std::fs::write(dir.join(MODULE_FILE), module).unwrap();
    }

    #[test]
    fn loads_a_consistent_bundle() {
        let dist = tempfile::tempdir().unwrap();
        write_bundle(dist.path(), &manifest_for("hello", 2, b"\0asm"), b"\0asm");
        let bundle = load_bundle(dist.path(), "hello", 2, None).unwrap();
        assert_eq!(bundle.bytes.module, b"\0asm");
        assert_eq!(bundle.manifest.version, 2);
    }

    #[test]
    fn a_missing_bundle_names_the_versions_that_exist() {
        let dist = tempfile::tempdir().unwrap();
        write_bundle(dist.path(), &manifest_for("hello", 1, b"a"), b"a");
        write_bundle(dist.path(), &manifest_for("hello", 3, b"a"), b"a");
        let error = load_bundle(dist.path(), "hello", 2, None).unwrap_err();
        assert!(format!("{error:#}").contains("signed versions there: 1, 3"), "{error:#}");
        let error = load_bundle(dist.path(), "files", 1, None).unwrap_err();
        assert!(format!("{error:#}").contains("no version of it is signed there"), "{error:#}");
    }

    #[test]
    fn a_tampered_module_is_refused_as_not_matching_its_manifest() {
        let dist = tempfile::tempdir().unwrap();
        write_bundle(dist.path(), &manifest_for("hello", 1, b"original"), b"tampered");
        let error = load_bundle(dist.path(), "hello", 1, None).unwrap_err();
        assert!(format!("{error:#}").contains("does not match its manifest"), "{error:#}");
    }

    #[test]
    fn a_manifest_for_another_module_or_version_is_refused() {
        let dist = tempfile::tempdir().unwrap();
        let manifest = manifest_for("files", 1, b"a");
        let dir = bundle_dir(dist.path(), "hello", 1);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), manifest.to_canonical_bytes().unwrap()).unwrap();
        std::fs::write(dir.join(MODULE_FILE), b"a").unwrap();
        let error = load_bundle(dist.path(), "hello", 1, None).unwrap_err();
        assert!(format!("{error:#}").contains("is for files version 1, not hello version 1"), "{error:#}");
    }

    #[test]
    fn a_non_canonical_manifest_is_refused() {
        let dist = tempfile::tempdir().unwrap();
        let manifest = manifest_for("hello", 1, b"a");
        let dir = bundle_dir(dist.path(), "hello", 1);
        std::fs::create_dir_all(&dir).unwrap();
        let pretty = serde_json::to_vec_pretty(&manifest).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), pretty).unwrap();
        std::fs::write(dir.join(MODULE_FILE), b"a").unwrap();
        let error = load_bundle(dist.path(), "hello", 1, None).unwrap_err();
        assert!(format!("{error:#}").contains("bad manifest"), "{error:#}");
    }
}
