//! Build provenance in the industry's formats: for every bundle it writes,
//! `cargo xtask sign` also writes an in-toto Statement (v1) whose predicate is
//! SLSA provenance (v1), wrapped in a DSSE envelope signed with the same keys
//! as the manifest ([`signer::dsse`]). `cargo xtask verify-reproducible`
//! checks that statement and names every recorded input the rebuild did not
//! reproduce.
//!
//! The manifest already records the inputs that matter to us
//! ([`Provenance`]); the statement says the same thing in a form other tools
//! (slsa-verifier, in-toto, policy engines) read, adds what only a build run
//! knows (compiler host and LLVM, cargo, when it ran) and is checked against
//! the manifest so the two can never tell different stories.
//!
//! Where: `<bundle dir>.intoto.json`, e.g. `dist/hello/1.intoto.json` beside
//! `dist/hello/1/`. Not inside the bundle, whose layout the guardian watches
//! as drift, and not a version number, so version listings skip it.
//!
//! What (payload type `application/vnd.in-toto+json`, canonical JSON):
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "hello/1/module.wasm", "digest": {"sha256": "<module sha256>"}}],
//!  "predicateType": "https://slsa.dev/provenance/v1",
//!  "predicate": {
//!   "buildDefinition": {
//!    "buildType": "https://nightcore.dev/xtask-build/v1",
//!    "externalParameters": {"module": "hello", "version": 1, "target": "wasm32-wasip1",
//!      "profile": "release", "buildFlags": ["--target=wasm32-wasip1", …], "sourceDateEpoch": 1700000000},
//!    "internalParameters": {"toolchain": {"rustc": "rustc 1.95.0 (…)", "rustcCommitHash": "…",
//!      "rustcHost": "x86_64-unknown-linux-gnu", "llvmVersion": "…", "cargo": "cargo 1.95.0 (…)"}},
//!    "resolvedDependencies": [
//!      {"name": "source", "digest": {"nightcoreSourceTreeV1": "<source_tree_sha256>", "gitCommit": "<commit>"}},
//!      {"name": "Cargo.lock", "digest": {"sha256": "<cargo_lock_sha256>"}}]},
//!   "runDetails": {"builder": {"id": "https://nightcore.dev/xtask-builder/v1", "version": {"xtask": "0.1.0"}},
//!    "metadata": {"invocationId": "urn:uuid:…", "startedOn": "…Z", "finishedOn": "…Z"}}}}
//! ```
//!
//! `buildType` `https://nightcore.dev/xtask-build/v1` means: `cargo xtask
//! build` of `externalParameters.module` from the modules workspace whose
//! source tree hashes to `nightcoreSourceTreeV1`, with exactly the recorded
//! flags (see `crate::build`). `nightcoreSourceTreeV1` is a DigestSet
//! algorithm of ours, lower-case hex, defined in `crate::source_tree`;
//! `gitCommit` is present when the source was a git checkout.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use signer::dsse::{Envelope, EnvelopePolicy, verify_envelope};
use signer::fsutil::{FileMode, atomic_write};
use signer::manifest::{Manifest, Provenance};
use signer::minisign::{KeyId, SecretKey};
use signer::trust::TrustStore;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::build::{BuildRun, BuiltModule, WASM_TARGET};
use crate::rebuild::{ProvenanceDifference, diff_provenance};
use crate::toolchain::ToolchainIdentity;

pub use signer::intoto::{ENVELOPE_SUFFIX, Found, PAYLOAD_TYPE, STATEMENT_TYPE, envelope_path, read_envelope};
/// `predicateType` of SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type: see the module documentation.
pub const BUILD_TYPE: &str = "https://nightcore.dev/xtask-build/v1";
/// `runDetails.builder.id`: `cargo xtask sign` run on a maintainer's machine.
pub const BUILDER_ID: &str = "https://nightcore.dev/xtask-builder/v1";
/// DigestSet algorithm name of `source_tree_sha256`.
pub const SOURCE_TREE_DIGEST: &str = "nightcoreSourceTreeV1";
/// `name` of the resolved dependency that is the module's source tree.
pub const SOURCE_DEPENDENCY: &str = "source";
/// `name` of the resolved dependency that is the modules workspace's lockfile.
pub const LOCKFILE_DEPENDENCY: &str = "Cargo.lock";
/// The cargo profile every module is built with.
pub const PROFILE: &str = "release";

/// The subject name of a module's statement: where its bytes sit under `dist/`.
pub fn subject_name(module: &str, version: u64) -> String {
    format!("{module}/{version}/{}", signer::bundle::MODULE_FILE)
}

/// An in-toto Statement v1 with a SLSA provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: SlsaProvenance,
}

/// An in-toto ResourceDescriptor, with the fields we use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Algorithm name to lower-case hex digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

/// The SLSA provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlsaProvenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub internal_parameters: InternalParameters,
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// What the person running the build chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    /// The module (package) built.
    pub module: String,
    /// Its release number, from `[package.metadata.nightcore]`.
    pub version: u64,
    pub target: String,
    pub profile: String,
    /// Every byte-affecting flag, path-independent ([`Provenance::build_flags`]).
    pub build_flags: Vec<String>,
    /// `SOURCE_DATE_EPOCH` of the build.
    pub source_date_epoch: u64,
}

/// What the builder chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    pub toolchain: ToolchainParameters,
}

/// The compiler and cargo, from `rustc -vV` and `cargo -V`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolchainParameters {
    /// `rustc -V`, as [`Provenance::toolchain`].
    pub rustc: String,
    #[serde(default)]
    pub rustc_commit_hash: String,
    #[serde(default)]
    pub rustc_host: String,
    #[serde(default)]
    pub llvm_version: String,
    #[serde(default)]
    pub cargo: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: RunMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMetadata {
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
}

/// Why a payload is not a statement about the bundle beside it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementError {
    #[error("envelope payload type {found:?} is not {PAYLOAD_TYPE:?}")]
    PayloadTypeMismatch { found: String },
    #[error("payload is not a SLSA provenance statement of build type {BUILD_TYPE}: {0}")]
    Malformed(String),
    #[error("statement type {found:?} is not {STATEMENT_TYPE:?}")]
    StatementTypeMismatch { found: String },
    #[error("predicate type {found:?} is not {PREDICATE_TYPE:?}")]
    PredicateTypeMismatch { found: String },
    #[error("build type {found:?} is not {BUILD_TYPE:?}")]
    BuildTypeMismatch { found: String },
    #[error("statement is about {found}, not about this bundle's module {expected}")]
    SubjectMismatch { expected: String, found: String },
    #[error("statement disagrees with the signed manifest on {}", describe(.differences))]
    ManifestMismatch { differences: Vec<ProvenanceDifference> },
}

impl StatementError {
    /// A stable snake_case code for JSON output.
    pub fn reason_code(&self) -> &'static str {
        match self {
            StatementError::PayloadTypeMismatch { .. } => "payload_type_mismatch",
            StatementError::Malformed(_) => "malformed_statement",
            StatementError::StatementTypeMismatch { .. } => "statement_type_mismatch",
            StatementError::PredicateTypeMismatch { .. } => "predicate_type_mismatch",
            StatementError::BuildTypeMismatch { .. } => "build_type_mismatch",
            StatementError::SubjectMismatch { .. } => "subject_mismatch",
            StatementError::ManifestMismatch { .. } => "manifest_mismatch",
        }
    }
}

fn describe(differences: &[ProvenanceDifference]) -> String {
    differences
        .iter()
        .map(|d| format!("{} (statement {:?}, manifest {:?})", d.field, d.recorded, d.rebuilt))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every input a statement records, flat, so that a record and a rebuild
/// compare field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    pub module: String,
    pub version: u64,
    pub target: String,
    pub profile: String,
    /// The inputs the manifest records too (toolchain line, `Cargo.lock` and
    /// source tree hashes, flags, `SOURCE_DATE_EPOCH`, commit).
    pub provenance: Provenance,
    pub toolchain: ToolchainIdentity,
}

impl BuildInputs {
    /// The inputs of a build that just ran.
    pub fn of_build(built: &BuiltModule) -> Self {
        Self {
            module: built.name.clone(),
            version: built.version,
            target: WASM_TARGET.to_owned(),
            profile: PROFILE.to_owned(),
            provenance: built.provenance.clone(),
            toolchain: built.toolchain_identity.clone(),
        }
    }

    /// The inputs a statement records.
    pub fn of_statement(statement: &Statement) -> Result<Self, StatementError> {
        let definition = &statement.predicate.build_definition;
        let dependency = |name: &str| {
            let mut matching = definition.resolved_dependencies.iter().filter(|d| d.name == name);
            match (matching.next(), matching.next()) {
                (Some(found), None) => Ok(found),
                _ => Err(StatementError::Malformed(format!("resolvedDependencies must name {name:?} exactly once"))),
            }
        };
        let digest = |descriptor: &ResourceDescriptor, algorithm: &str| {
            descriptor.digest.get(algorithm).cloned().ok_or_else(|| {
                StatementError::Malformed(format!(
                    "resolved dependency {:?} has no {algorithm} digest",
                    descriptor.name
                ))
            })
        };
        let source = dependency(SOURCE_DEPENDENCY)?;
        let lockfile = dependency(LOCKFILE_DEPENDENCY)?;
        let external = &definition.external_parameters;
        let toolchain = &definition.internal_parameters.toolchain;
        Ok(Self {
            module: external.module.clone(),
            version: external.version,
            target: external.target.clone(),
            profile: external.profile.clone(),
            provenance: Provenance {
                toolchain: toolchain.rustc.clone(),
                cargo_lock_sha256: digest(lockfile, "sha256")?,
                source_tree_sha256: digest(source, SOURCE_TREE_DIGEST)?,
                build_flags: external.build_flags.clone(),
                source_date_epoch: external.source_date_epoch,
                commit: source.digest.get("gitCommit").cloned().unwrap_or_default(),
            },
            toolchain: ToolchainIdentity {
                rustc_commit_hash: toolchain.rustc_commit_hash.clone(),
                rustc_host: toolchain.rustc_host.clone(),
                llvm_version: toolchain.llvm_version.clone(),
                cargo_version: toolchain.cargo.clone(),
            },
        })
    }

    /// Every input whose recorded value differs from `now`, named as in the
    /// manifest's provenance (`cargo_lock_sha256`, `source_tree_sha256`, …)
    /// and, for the rest, `module`, `version`, `target`, `profile`,
    /// `rustc_commit_hash`, `rustc_host`, `llvm_version`, `cargo_version`.
    pub fn differences(&self, now: &Self) -> Vec<ProvenanceDifference> {
        let mut differences = diff_provenance(&self.provenance, &now.provenance);
        let (recorded, rebuilt) = (&self.toolchain, &now.toolchain);
        let fields = [
            ("module", self.module.clone(), now.module.clone()),
            ("version", self.version.to_string(), now.version.to_string()),
            ("target", self.target.clone(), now.target.clone()),
            ("profile", self.profile.clone(), now.profile.clone()),
            ("rustc_commit_hash", recorded.rustc_commit_hash.clone(), rebuilt.rustc_commit_hash.clone()),
            ("rustc_host", recorded.rustc_host.clone(), rebuilt.rustc_host.clone()),
            ("llvm_version", recorded.llvm_version.clone(), rebuilt.llvm_version.clone()),
            ("cargo_version", recorded.cargo_version.clone(), rebuilt.cargo_version.clone()),
        ];
        differences.extend(
            fields
                .into_iter()
                .filter(|(_, recorded, rebuilt)| recorded != rebuilt)
                .map(|(field, recorded, rebuilt)| ProvenanceDifference { field, recorded, rebuilt }),
        );
        differences
    }

    /// The statement's build definition of these inputs.
    fn build_definition(&self) -> BuildDefinition {
        let p = &self.provenance;
        let mut source = BTreeMap::from([(SOURCE_TREE_DIGEST.to_owned(), p.source_tree_sha256.clone())]);
        if !p.commit.is_empty() {
            source.insert("gitCommit".to_owned(), p.commit.clone());
        }
        BuildDefinition {
            build_type: BUILD_TYPE.to_owned(),
            external_parameters: ExternalParameters {
                module: self.module.clone(),
                version: self.version,
                target: self.target.clone(),
                profile: self.profile.clone(),
                build_flags: p.build_flags.clone(),
                source_date_epoch: p.source_date_epoch,
            },
            internal_parameters: InternalParameters {
                toolchain: ToolchainParameters {
                    rustc: p.toolchain.clone(),
                    rustc_commit_hash: self.toolchain.rustc_commit_hash.clone(),
                    rustc_host: self.toolchain.rustc_host.clone(),
                    llvm_version: self.toolchain.llvm_version.clone(),
                    cargo: self.toolchain.cargo_version.clone(),
                },
            },
            resolved_dependencies: vec![
                ResourceDescriptor { name: SOURCE_DEPENDENCY.to_owned(), digest: source },
                ResourceDescriptor {
                    name: LOCKFILE_DEPENDENCY.to_owned(),
                    digest: BTreeMap::from([("sha256".to_owned(), p.cargo_lock_sha256.clone())]),
                },
            ],
        }
    }
}

impl Statement {
    /// The statement of a module that was just built.
    pub fn of_build(built: &BuiltModule) -> Self {
        let BuildRun { invocation_id, started_on, finished_on } = built.run.clone();
        Self {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![ResourceDescriptor {
                name: subject_name(&built.name, built.version),
                digest: BTreeMap::from([("sha256".to_owned(), built.sha256.clone())]),
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: SlsaProvenance {
                build_definition: BuildInputs::of_build(built).build_definition(),
                run_details: RunDetails {
                    builder: Builder {
                        id: BUILDER_ID.to_owned(),
                        version: BTreeMap::from([("xtask".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
                    },
                    metadata: RunMetadata { invocation_id, started_on, finished_on },
                },
            },
        }
    }

    /// The DSSE payload: canonical JSON, so one statement has one encoding.
    pub fn to_payload(&self) -> Result<Vec<u8>> {
        signer::canonical::to_canonical_bytes(self).context("cannot encode the provenance statement")
    }

    /// Parses a DSSE payload, refusing anything but a statement of ours.
    pub fn from_payload(payload: &[u8]) -> Result<Self, StatementError> {
        // Parse the three outer layers loosely first, so a statement of another
        // kind is named as such rather than as a missing field.
        #[derive(Deserialize)]
        struct Outer {
            #[serde(rename = "_type", default)]
            statement_type: String,
            #[serde(rename = "predicateType", default)]
            predicate_type: String,
            #[serde(default)]
            predicate: serde_json::Value,
        }
        let outer: Outer = serde_json::from_slice(payload).map_err(|e| StatementError::Malformed(e.to_string()))?;
        if outer.statement_type != STATEMENT_TYPE {
            return Err(StatementError::StatementTypeMismatch { found: truncate(&outer.statement_type) });
        }
        if outer.predicate_type != PREDICATE_TYPE {
            return Err(StatementError::PredicateTypeMismatch { found: truncate(&outer.predicate_type) });
        }
        let build_type = outer.predicate.pointer("/buildDefinition/buildType").and_then(|v| v.as_str());
        if build_type != Some(BUILD_TYPE) {
            return Err(StatementError::BuildTypeMismatch { found: truncate(build_type.unwrap_or_default()) });
        }
        serde_json::from_slice(payload).map_err(|e| StatementError::Malformed(e.to_string()))
    }

    /// Checks that the statement is about `manifest`'s module and records
    /// what the manifest records, and returns the recorded inputs.
    pub fn check_against(&self, manifest: &Manifest) -> Result<BuildInputs, StatementError> {
        let expected =
            format!("{} (sha256 {})", subject_name(&manifest.name, manifest.version), manifest.module.sha256);
        let [subject] = self.subject.as_slice() else {
            return Err(StatementError::SubjectMismatch {
                expected,
                found: format!("{} subjects (a module's statement has exactly one)", self.subject.len()),
            });
        };
        let found =
            format!("{} (sha256 {})", subject.name, subject.digest.get("sha256").map_or("none", String::as_str));
        if found != expected {
            return Err(StatementError::SubjectMismatch { expected, found: truncate(&found) });
        }
        let inputs = BuildInputs::of_statement(self)?;
        let mut differences = diff_provenance(&inputs.provenance, &manifest.provenance);
        for (field, recorded, signed) in [
            ("module", inputs.module.clone(), manifest.name.clone()),
            ("version", inputs.version.to_string(), manifest.version.to_string()),
        ] {
            if recorded != signed {
                differences.push(ProvenanceDifference { field, recorded, rebuilt: signed });
            }
        }
        if differences.is_empty() { Ok(inputs) } else { Err(StatementError::ManifestMismatch { differences }) }
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX { text.to_owned() } else { text.chars().take(MAX).collect::<String>() + "…" }
}

/// The envelope of a freshly built module's statement, signed by `key` when
/// one is given (unsigned for the offline flow).
pub fn envelope_for(built: &BuiltModule, key: Option<&SecretKey>) -> Result<Envelope> {
    let mut envelope = Envelope::new(PAYLOAD_TYPE, Statement::of_build(built).to_payload()?);
    if let Some(key) = key {
        envelope.sign(key);
    }
    Ok(envelope)
}

/// Writes an envelope to `path` atomically.
pub fn write_envelope(path: &Path, envelope: &Envelope) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    atomic_write(path, &envelope.to_json_bytes(), FileMode::Public)
        .with_context(|| format!("cannot write the provenance statement {}", path.display()))
}

/// Checks an envelope's content without its signatures: payload type,
/// statement, subject and agreement with the manifest.
pub fn check_content(envelope: &Envelope, manifest: &Manifest) -> Result<BuildInputs, StatementError> {
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(StatementError::PayloadTypeMismatch { found: truncate(&envelope.payload_type) });
    }
    Statement::from_payload(&envelope.payload)?.check_against(manifest)
}

/// How the statement beside a bundle fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementStatus {
    /// Unreadable, not a statement of ours, about other bytes, or telling
    /// another story than the manifest: a definite "no".
    Invalid,
    /// There is no statement beside the bundle (signed before statements
    /// existed, or not copied along).
    Missing,
    /// Signed, but no trust store was given to check the signatures against.
    Unchecked,
    /// No signature yet: written by `cargo xtask sign --request-only` and not
    /// signed since.
    Unsigned,
    /// The signatures do not verify against the trust store: a definite "no".
    Unverified,
    /// Signed by enough trusted keys.
    Verified,
}

/// Whether a bundle without a signed statement passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatementRequirement {
    /// A missing or unsigned statement is reported, not failed: bundles signed
    /// before statements existed, and by the offline flow, have none.
    #[default]
    Optional,
    /// A missing or unsigned statement fails like a bad one.
    Required,
}

/// The check of one statement, as `verify-reproducible --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    /// `<bundle dir>.intoto.json`.
    pub path: PathBuf,
    pub status: StatementStatus,
    /// Stable code of what is wrong, for `invalid` and `unverified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// What is wrong, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The trusted keys whose signatures counted (`verified` only), sorted.
    pub signers: Vec<KeyId>,
    /// How many signatures the envelope carries, trusted or not.
    pub signature_count: usize,
    /// Recorded inputs that differ from the rebuild's, named as in the
    /// manifest's provenance; empty when they all match or before a rebuild.
    pub differences: Vec<ProvenanceDifference>,
    /// The inputs the statement records, once its content checked out.
    #[serde(skip)]
    pub recorded: Option<BuildInputs>,
}

impl StatementReport {
    fn new(path: PathBuf, status: StatementStatus) -> Self {
        Self {
            path,
            status,
            reason: None,
            error: None,
            signers: Vec::new(),
            signature_count: 0,
            differences: Vec::new(),
            recorded: None,
        }
    }

    fn fail(mut self, status: StatementStatus, reason: &'static str, error: String) -> Self {
        self.status = status;
        self.reason = Some(reason);
        self.error = Some(error);
        self.recorded = None;
        self
    }

    /// Why this statement makes the verification a "no" under `requirement`,
    /// or `None` when it does not.
    pub fn failure(&self, requirement: StatementRequirement) -> Option<String> {
        let required = requirement == StatementRequirement::Required;
        match self.status {
            StatementStatus::Invalid | StatementStatus::Unverified => {
                Some(self.error.clone().unwrap_or_else(|| "it does not verify".to_owned()))
            }
            StatementStatus::Missing if required => Some("there is none, and one is required".to_owned()),
            StatementStatus::Unsigned if required => Some("it is unsigned, and a signed one is required".to_owned()),
            _ => None,
        }
    }

    /// Records how the statement's inputs compare with a rebuild's.
    pub fn compare_with(&mut self, rebuilt: &BuildInputs) {
        if let Some(recorded) = &self.recorded {
            self.differences = recorded.differences(rebuilt);
        }
    }
}

/// Checks the statement beside `bundle_dir` against `manifest` (already read
/// from that bundle) and, when `trust` is given, its signatures against the
/// trust store with the manifest's tenant and threshold. Signatures are
/// checked before the payload is parsed. Only I/O failures are errors.
pub fn check_statement(bundle_dir: &Path, manifest: &Manifest, trust: Option<&TrustStore>) -> Result<StatementReport> {
    let path = envelope_path(bundle_dir);
    let report = StatementReport::new(path, StatementStatus::Missing);
    let envelope = match read_envelope(bundle_dir)? {
        Found::Missing => return Ok(report),
        Found::Unreadable { reason, error } => return Ok(report.fail(StatementStatus::Invalid, reason, error)),
        Found::Envelope(envelope) => envelope,
    };
    let mut report = StatementReport { signature_count: envelope.signatures.len(), ..report };
    report.status = match trust {
        _ if envelope.signatures.is_empty() => StatementStatus::Unsigned,
        None => StatementStatus::Unchecked,
        Some(trust) => {
            let policy = EnvelopePolicy { payload_type: PAYLOAD_TYPE, tenant: &manifest.name };
            match verify_envelope(&envelope, trust, &policy) {
                Ok(signers) => {
                    report.signers = signers;
                    StatementStatus::Verified
                }
                Err(e) => return Ok(report.fail(StatementStatus::Unverified, e.reason_code(), e.to_string())),
            }
        }
    };
    Ok(match check_content(&envelope, manifest) {
        Ok(inputs) => StatementReport { recorded: Some(inputs), ..report },
        Err(e) => report.fail(StatementStatus::Invalid, e.reason_code(), e.to_string()),
    })
}

/// For an existing bundle: checks the statement beside it and adds `key`'s
/// signature (when given) to the payload that is already there, so that every
/// signer of a k-of-n release signs the same statement. `Ok(None)` when the
/// bundle has no statement: it was made before statements existed, and one
/// written now would carry fewer signatures than its manifest.
pub fn sign_existing(bundle_dir: &Path, manifest: &Manifest, key: Option<&SecretKey>) -> Result<Option<PathBuf>> {
    let path = envelope_path(bundle_dir);
    let mut envelope = match read_envelope(bundle_dir)? {
        Found::Missing => return Ok(None),
        Found::Unreadable { error, .. } => {
            anyhow::bail!("the provenance statement {} is unreadable: {error}", path.display())
        }
        Found::Envelope(envelope) => envelope,
    };
    check_content(&envelope, manifest)
        .with_context(|| format!("refusing to sign the provenance statement {}", path.display()))?;
    if let Some(key) = key {
        envelope.sign(key);
        write_envelope(&path, &envelope)?;
    }
    Ok(Some(path))
}

/// The statement part of `verify-reproducible`'s human output.
pub fn render_human(report: &StatementReport) -> String {
    let mut out = String::new();
    let path = report.path.display();
    let _ = match report.status {
        StatementStatus::Missing => writeln!(out, "  build provenance: no statement at {path}"),
        StatementStatus::Unsigned => writeln!(out, "  build provenance: {path} is unsigned"),
        StatementStatus::Unchecked => writeln!(
            out,
            "  build provenance: {path} has {} signature(s), not checked (no --trust)",
            report.signature_count
        ),
        StatementStatus::Verified => {
            let signers: Vec<String> = report.signers.iter().map(ToString::to_string).collect();
            writeln!(out, "  build provenance: {path} verified, signed by {}", signers.join(", "))
        }
        StatementStatus::Invalid | StatementStatus::Unverified => writeln!(
            out,
            "  build provenance: {path} REFUSED ({}): {}",
            report.reason.unwrap_or("invalid"),
            report.error.as_deref().unwrap_or("")
        ),
    };
    if !report.differences.is_empty() {
        let _ = writeln!(out, "  recorded inputs that differ from the rebuild:");
        for d in &report.differences {
            let _ = writeln!(out, "    {}: recorded {} now {}", d.field, d.recorded, d.rebuilt);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use signer::manifest::{Capabilities, MANIFEST_SCHEMA, ModuleDigest};

    fn built() -> BuiltModule {
        let module = b"\0asm\x01\0\0\0";
        BuiltModule {
            name: "hello".into(),
            version: 3,
            version_label: "0.1.0".into(),
            wasm_path: PathBuf::from("/nonexistent/hello.wasm"),
            sha256: ModuleDigest::of(module).sha256,
            size: module.len() as u64,
            provenance: Provenance {
                toolchain: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
                cargo_lock_sha256: "a".repeat(64),
                source_tree_sha256: "b".repeat(64),
                build_flags: vec!["--target=wasm32-wasip1".into(), "--release".into()],
                source_date_epoch: 1_700_000_000,
                commit: "c".repeat(40),
            },
            capabilities: Capabilities::default(),
            toolchain_identity: ToolchainIdentity {
                rustc_commit_hash: "59807616e1fa2540724bfbac14d7976d7e4a3860".into(),
                rustc_host: "x86_64-unknown-linux-gnu".into(),
                llvm_version: "22.1.2".into(),
                cargo_version: "cargo 1.95.0 (f2d3ce0bd 2026-03-21)".into(),
            },
            run: BuildRun {
                invocation_id: "urn:uuid:00000000-0000-4000-8000-000000000000".into(),
                started_on: "2026-05-01T10:00:00Z".into(),
                finished_on: "2026-05-01T10:01:00Z".into(),
            },
        }
    }

    fn manifest_of(built: &BuiltModule) -> Manifest {
        Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: built.name.clone(),
            version: built.version,
            version_label: built.version_label.clone(),
            module: built.digest(),
            expires: "2999-01-01T00:00:00Z".into(),
            provenance: built.provenance.clone(),
            capabilities: built.capabilities.clone(),
        }
    }

    fn trust_of(keys: &[&SecretKey], threshold: usize) -> TrustStore {
        TrustStore::from_keys_and_toml(
            keys.iter().map(|k| k.public_key()).collect(),
            &format!("threshold = {threshold}\n"),
        )
        .unwrap()
    }

    /// A bundle directory (empty: only its name matters) with `envelope` beside it.
    fn beside(envelope: &Envelope) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("hello").join("3");
        std::fs::create_dir_all(&bundle).unwrap();
        write_envelope(&envelope_path(&bundle), envelope).unwrap();
        (dir, bundle)
    }

    #[test]
    fn the_statement_has_the_standard_shape() {
        let statement = Statement::of_build(&built());
        let json: serde_json::Value = serde_json::from_slice(&statement.to_payload().unwrap()).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["predicateType"], PREDICATE_TYPE);
        assert_eq!(json["subject"][0]["name"], "hello/3/module.wasm");
        assert_eq!(json["subject"][0]["digest"]["sha256"], built().sha256);
        let definition = &json["predicate"]["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        assert_eq!(definition["externalParameters"]["target"], "wasm32-wasip1");
        assert_eq!(definition["externalParameters"]["profile"], "release");
        assert_eq!(definition["externalParameters"]["sourceDateEpoch"], 1_700_000_000);
        assert_eq!(definition["externalParameters"]["buildFlags"][1], "--release");
        assert_eq!(definition["internalParameters"]["toolchain"]["rustcHost"], "x86_64-unknown-linux-gnu");
        assert_eq!(definition["internalParameters"]["toolchain"]["cargo"], "cargo 1.95.0 (f2d3ce0bd 2026-03-21)");
        assert_eq!(definition["resolvedDependencies"][0]["digest"]["nightcoreSourceTreeV1"], "b".repeat(64));
        assert_eq!(definition["resolvedDependencies"][0]["digest"]["gitCommit"], "c".repeat(40));
        assert_eq!(definition["resolvedDependencies"][1]["name"], "Cargo.lock");
        assert_eq!(definition["resolvedDependencies"][1]["digest"]["sha256"], "a".repeat(64));
        let run = &json["predicate"]["runDetails"];
        assert_eq!(run["builder"]["id"], BUILDER_ID);
        assert_eq!(run["metadata"]["invocationId"], "urn:uuid:00000000-0000-4000-8000-000000000000");
        assert_eq!(run["metadata"]["finishedOn"], "2026-05-01T10:01:00Z");
    }

    #[test]
    fn a_statement_round_trips_to_the_inputs_it_was_made_from() {
        let built = built();
        let statement = Statement::from_payload(&Statement::of_build(&built).to_payload().unwrap()).unwrap();
        assert_eq!(statement, Statement::of_build(&built));
        let inputs = statement.check_against(&manifest_of(&built)).unwrap();
        assert_eq!(inputs, BuildInputs::of_build(&built));
        assert!(inputs.differences(&BuildInputs::of_build(&built)).is_empty());
    }

    #[test]
    fn without_a_commit_the_source_has_no_git_digest() {
        let mut built = built();
        built.provenance.commit.clear();
        let statement = Statement::of_build(&built);
        assert!(!statement.predicate.build_definition.resolved_dependencies[0].digest.contains_key("gitCommit"));
        assert_eq!(BuildInputs::of_statement(&statement).unwrap().provenance.commit, "");
    }

    #[test]
    fn differences_name_each_changed_input_with_both_values() {
        let recorded = BuildInputs::of_build(&built());
        let mut now = recorded.clone();
        now.provenance.cargo_lock_sha256 = "d".repeat(64);
        now.provenance.source_tree_sha256 = "e".repeat(64);
        now.toolchain.rustc_host = "aarch64-unknown-linux-gnu".into();
        now.target = "wasm32-wasip2".into();
        let differences = recorded.differences(&now);
        let fields: Vec<&str> = differences.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["cargo_lock_sha256", "source_tree_sha256", "target", "rustc_host"]);
        assert_eq!(differences[0].recorded, "a".repeat(64));
        assert_eq!(differences[0].rebuilt, "d".repeat(64));
        let mut report = StatementReport::new(PathBuf::from("dist/hello/3.intoto.json"), StatementStatus::Verified);
        report.recorded = Some(recorded);
        report.compare_with(&now);
        let text = render_human(&report);
        assert!(
            text.contains(&format!("    cargo_lock_sha256: recorded {} now {}\n", "a".repeat(64), "d".repeat(64))),
            "{text}"
        );
        assert!(text.contains("    rustc_host: recorded x86_64-unknown-linux-gnu now aarch64-unknown-linux-gnu\n"));
    }

    #[test]
    fn statements_of_other_kinds_are_named_as_such() {
        let built = built();
        let mut json: serde_json::Value = serde_json::to_value(Statement::of_build(&built)).unwrap();
        let cases = [
            ("/_type", "https://in-toto.io/Statement/v0.1", "statement_type_mismatch"),
            ("/predicateType", "https://slsa.dev/provenance/v0.2", "predicate_type_mismatch"),
            ("/predicate/buildDefinition/buildType", "https://example.com/other", "build_type_mismatch"),
        ];
        for (pointer, value, code) in cases {
            let mut changed = json.clone();
            *changed.pointer_mut(pointer).unwrap() = value.into();
            let error = Statement::from_payload(&serde_json::to_vec(&changed).unwrap()).unwrap_err();
            assert_eq!(error.reason_code(), code, "{error}");
        }
        json["predicate"]["buildDefinition"]["externalParameters"] = serde_json::json!({});
        let error = Statement::from_payload(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert_eq!(error.reason_code(), "malformed_statement");
        for garbage in [&b"not json"[..], b"[]", b"{}", &[0xff; 3]] {
            assert!(Statement::from_payload(garbage).is_err());
        }
    }

    #[test]
    fn a_statement_about_other_bytes_or_telling_another_story_is_refused() {
        let built = built();
        let manifest = manifest_of(&built);
        let mut other = built.clone();
        other.sha256 = "f".repeat(64);
        let error = Statement::of_build(&other).check_against(&manifest).unwrap_err();
        assert_eq!(error.reason_code(), "subject_mismatch");
        assert!(error.to_string().contains(&"f".repeat(64)), "{error}");

        let mut edited = Statement::of_build(&built);
        edited.predicate.build_definition.resolved_dependencies[1].digest.insert("sha256".into(), "0".repeat(64));
        let error = edited.check_against(&manifest).unwrap_err();
        assert_eq!(
            error,
            StatementError::ManifestMismatch {
                differences: vec![ProvenanceDifference {
                    field: "cargo_lock_sha256",
                    recorded: "0".repeat(64),
                    rebuilt: "a".repeat(64)
                }]
            }
        );
        assert!(error.to_string().starts_with("statement disagrees with the signed manifest on cargo_lock_sha256"));

        let mut twice = Statement::of_build(&built);
        twice.subject.push(twice.subject[0].clone());
        assert_eq!(twice.check_against(&manifest).unwrap_err().reason_code(), "subject_mismatch");
    }

    #[test]
    fn check_statement_reports_every_status() {
        let built = built();
        let manifest = manifest_of(&built);
        let alice = SecretKey::generate();
        let bob = SecretKey::generate();
        let trust = trust_of(&[&alice, &bob], 2);

        let dir = tempfile::tempdir().unwrap();
        let missing = check_statement(&dir.path().join("hello/3"), &manifest, Some(&trust)).unwrap();
        assert_eq!(missing.status, StatementStatus::Missing);
        assert_eq!(missing.failure(StatementRequirement::Optional), None);
        assert!(missing.failure(StatementRequirement::Required).is_some());

        let unsigned = envelope_for(&built, None).unwrap();
        let (_dir, bundle) = beside(&unsigned);
        let report = check_statement(&bundle, &manifest, Some(&trust)).unwrap();
        assert_eq!((report.status, report.failure(StatementRequirement::Optional)), (StatementStatus::Unsigned, None));
        assert!(report.recorded.is_some(), "an unsigned statement's content is still checked");

        let mut signed = envelope_for(&built, Some(&alice)).unwrap();
        signed.sign(&bob);
        let (_dir, bundle) = beside(&signed);
        assert_eq!(check_statement(&bundle, &manifest, None).unwrap().status, StatementStatus::Unchecked);
        let report = check_statement(&bundle, &manifest, Some(&trust)).unwrap();
        assert_eq!(report.status, StatementStatus::Verified);
        assert_eq!(report.signers.len(), 2);
        assert_eq!(report.signature_count, 2);

        let one = envelope_for(&built, Some(&alice)).unwrap();
        let (_dir, bundle) = beside(&one);
        let report = check_statement(&bundle, &manifest, Some(&trust)).unwrap();
        assert_eq!((report.status, report.reason), (StatementStatus::Unverified, Some("threshold_not_met")));
        assert!(report.failure(StatementRequirement::Optional).is_some());

        let mut tampered = signed.clone();
        let text = String::from_utf8(tampered.payload.clone()).unwrap().replace(&"a".repeat(64), &"0".repeat(64));
        tampered.payload = text.into_bytes();
        let (_dir, bundle) = beside(&tampered);
        let report = check_statement(&bundle, &manifest, Some(&trust)).unwrap();
        assert_eq!((report.status, report.reason), (StatementStatus::Unverified, Some("bad_signature")));
        // Without a trust store the same edit is caught by the manifest.
        let report = check_statement(&bundle, &manifest, None).unwrap();
        assert_eq!((report.status, report.reason), (StatementStatus::Invalid, Some("manifest_mismatch")));

        let (_dir, bundle) = beside(&signed);
        std::fs::write(envelope_path(&bundle), b"{\"payload\": 7}").unwrap();
        let report = check_statement(&bundle, &manifest, Some(&trust)).unwrap();
        assert_eq!((report.status, report.reason), (StatementStatus::Invalid, Some("malformed_envelope")));
    }

    #[test]
    fn signing_an_existing_statement_keeps_its_payload_and_adds_a_signature() {
        let built = built();
        let manifest = manifest_of(&built);
        let (alice, bob) = (SecretKey::generate(), SecretKey::generate());
        let first = envelope_for(&built, Some(&alice)).unwrap();
        let (_dir, bundle) = beside(&first);
        assert_eq!(sign_existing(&bundle, &manifest, Some(&bob)).unwrap(), Some(envelope_path(&bundle)));
        let Found::Envelope(envelope) = read_envelope(&bundle).unwrap() else { panic!("no envelope") };
        assert_eq!(envelope.payload, first.payload);
        assert_eq!(envelope.signatures.len(), 2);
        assert!(matches!(
            check_statement(&bundle, &manifest, Some(&trust_of(&[&alice, &bob], 2))).unwrap().status,
            StatementStatus::Verified
        ));

        let mut other = manifest.clone();
        other.module.sha256 = "f".repeat(64);
        let error = sign_existing(&bundle, &other, Some(&bob)).unwrap_err();
        assert!(format!("{error:#}").contains("refusing to sign"), "{error:#}");
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(sign_existing(&empty.path().join("hello/3"), &manifest, Some(&bob)).unwrap(), None);
    }
}
