//! The signed manifest: the one statement a signer approves.
//!
//! A manifest names the module (tenant name, monotonically increasing version),
//! pins its bytes (SHA-256 and size), says until when the approval holds, records
//! how the module was built, and carries the capabilities the module is granted.
//! Because the policy is inside the signed statement, an old permissive policy can
//! never be paired with a new module, nor a new policy with an old module.
//!
//! On disk a manifest is canonical JSON (see [`crate::canonical`]), so the bytes a
//! build produces are reproducible and the bytes that were signed are exactly the
//! bytes that are read back.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::canonical::{CanonicalError, to_canonical_bytes};

/// The manifest format written by this version of Night Core.
pub const MANIFEST_SCHEMA: &str = "nightcore.manifest.v1";

/// Manifests larger than this are refused before parsing: a real manifest is a
/// few KiB, and the cap keeps an attacker-supplied file from costing memory.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// A signed statement about one version of one tenant's module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`]; a different value is refused so that a future
    /// format is never misread as this one.
    pub schema: String,
    /// Tenant / module name: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// Monotonically increasing version number; the guardian never accepts a
    /// bundle whose version is below the highest it has accepted (rollback floor).
    pub version: u64,
    /// Human-readable version such as `1.4.2`; informational only.
    pub version_label: String,
    /// The module bytes this manifest approves.
    pub module: ModuleDigest,
    /// RFC 3339 UTC time after which the approval no longer holds.
    pub expires: String,
    /// How the module was built; empty fields when built outside the pipeline.
    pub provenance: Provenance,
    /// What the module may use when it runs.
    pub capabilities: Capabilities,
}

/// Hash and size of `module.wasm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleDigest {
    /// Lower-case hex SHA-256 of the module bytes.
    pub sha256: String,
    /// Size in bytes; checked before hashing so an oversized file is refused cheaply.
    pub size: u64,
}

impl ModuleDigest {
    /// Digest of `module` bytes.
    pub fn of(module: &[u8]) -> Self {
        Self { sha256: hex::encode(Sha256::digest(module)), size: module.len() as u64 }
    }
}

/// The build inputs that produced the module, recorded so that a rebuild can be
/// compared against them (`cargo xtask verify-reproducible`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// `rustc -V` output (or another compiler's version line).
    pub toolchain: String,
    /// Lower-case hex SHA-256 of the `Cargo.lock` the module was built with.
    pub cargo_lock_sha256: String,
    /// Lower-case hex SHA-256 over the module's source tree (see xtask).
    pub source_tree_sha256: String,
    /// Flags that influence the output bytes (profile settings, RUSTFLAGS, target).
    pub build_flags: Vec<String>,
    /// Seconds since the epoch used as the build timestamp.
    pub source_date_epoch: u64,
    /// Version-control commit of the source, when known.
    pub commit: String,
}

/// Whether a preopened directory may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PreopenMode {
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

impl PreopenMode {
    /// The manifest's spelling: `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            PreopenMode::ReadOnly => "ro",
            PreopenMode::ReadWrite => "rw",
        }
    }
}

/// A directory the module asks to see at `guest` path. The host decides which
/// host directory backs it; the manifest only says what the module may ask for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preopen {
    pub guest: String,
    pub mode: PreopenMode,
}

/// What a module is allowed to use. Also the format of the `--caps` TOML file and
/// of `[package.metadata.nightcore]` in a module's `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Instruction budget in wasmtime fuel units.
    pub fuel: u64,
    /// Cap on linear memory, in MiB.
    pub memory_mib: u32,
    /// Wall-clock limit for the whole run, in milliseconds.
    pub timeout_ms: u64,
    /// Cap on each of stdout and stderr, in bytes; output past it is dropped and
    /// the run is reported as having hit the limit.
    pub max_output_bytes: u64,
    /// Names of environment variables the host may pass to the guest; nothing is
    /// inherited unless listed here and supplied by the host.
    pub env: Vec<String>,
    /// Directories the module asks to see.
    pub preopen: Vec<Preopen>,
    /// Socket addresses (`host:port`) the module may reach; empty means no
    /// network at all, and the socket imports are refused.
    pub network: Vec<String>,
}

impl Default for Capabilities {
    /// Conservative defaults: enough for a small command-line module, no files,
    /// no network, no environment.
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            memory_mib: 64,
            timeout_ms: 5_000,
            max_output_bytes: 1024 * 1024,
            env: Vec::new(),
            preopen: Vec::new(),
            network: Vec::new(),
        }
    }
}

/// Upper bounds that even a signer cannot exceed: they keep a typo in a caps file
/// from becoming an unbounded grant.
pub const MAX_FUEL: u64 = 1 << 50;
pub const MAX_MEMORY_MIB: u32 = 4096;
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a manifest or capabilities document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is {size} bytes, over the {max}-byte cap")]
    TooLarge { size: usize, max: usize },
    #[error("manifest is not valid UTF-8")]
    NotUtf8,
    #[error("manifest is not valid JSON for this schema: {0}")]
    Json(String),
    #[error("manifest is not in canonical form (re-serialising it changes its bytes)")]
    NotCanonical,
    #[error("manifest schema {found:?} is not {expected:?}")]
    Schema { found: String, expected: &'static str },
    #[error("invalid field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("capabilities file is not valid TOML: {0}")]
    CapsToml(String),
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl Manifest {
    /// Parses manifest bytes as read from disk, refusing anything that is too
    /// large, not UTF-8, not canonical, of another schema, or semantically invalid.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { size: bytes.len(), max: MAX_MANIFEST_BYTES });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(ManifestError::Schema { found: manifest.schema, expected: MANIFEST_SCHEMA });
        }
        manifest.validate()?;
        // Requiring canonical bytes means there is exactly one encoding of each
        // statement, so two manifests with equal content always hash the same.
        if manifest.to_canonical_bytes()? != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    /// The canonical bytes that are written to `manifest.json` and signed.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(to_canonical_bytes(self)?)
    }

    /// The expiry as a point in time.
    pub fn expires_at(&self) -> Result<time::OffsetDateTime, ManifestError> {
        parse_rfc3339(&self.expires, "expires")
    }

    /// Checks the fields that serde cannot: name syntax, hex digests, expiry
    /// syntax and capability bounds.
    pub fn validate(&self) -> Result<(), ManifestError> {
        validate_name(&self.name)?;
        if self.version_label.len() > 64 || self.version_label.chars().any(char::is_control) {
            return Err(field("version_label", "must be at most 64 printable characters"));
        }
        if !is_lower_hex_sha256(&self.module.sha256) {
            return Err(field("module.sha256", "must be 64 lower-case hex digits"));
        }
        self.expires_at()?;
        self.capabilities.validate()
    }
}

impl Capabilities {
    /// Parses a capabilities TOML document (the `--caps` file).
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let caps: Capabilities = toml::from_str(text).map_err(|e| ManifestError::CapsToml(e.to_string()))?;
        caps.validate()?;
        Ok(caps)
    }

    /// Checks bounds and path syntax.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.fuel == 0 || self.fuel > MAX_FUEL {
            return Err(field("capabilities.fuel", format!("must be between 1 and {MAX_FUEL}")));
        }
        if self.memory_mib == 0 || self.memory_mib > MAX_MEMORY_MIB {
            return Err(field("capabilities.memory_mib", format!("must be between 1 and {MAX_MEMORY_MIB}")));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(field("capabilities.timeout_ms", format!("must be between 1 and {MAX_TIMEOUT_MS}")));
        }
        for name in &self.env {
            let ok =
                !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(field("capabilities.env", format!("{name:?} is not an environment variable name")));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for preopen in &self.preopen {
            validate_guest_path(&preopen.guest)?;
            if !seen.insert(preopen.guest.as_str()) {
                return Err(field("capabilities.preopen", format!("guest path {} is listed twice", preopen.guest)));
            }
        }
        for addr in &self.network {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(field("capabilities.network", format!("{addr:?} is not an ip:port socket address")));
            }
        }
        Ok(())
    }

    /// Preopens keyed by guest path, for lookups.
    pub fn preopens_by_guest(&self) -> BTreeMap<&str, PreopenMode> {
        self.preopen.iter().map(|p| (p.guest.as_str(), p.mode)).collect()
    }
}

/// Tenant names become directory names and log fields, so they are restricted
/// to a safe alphabet.
pub fn validate_name(name: &str) -> Result<(), ManifestError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with('-');
    if ok { Ok(()) } else { Err(field("name", format!("{name:?} must be 1-64 of [a-z0-9_-], not starting with '-'"))) }
}

fn validate_guest_path(path: &str) -> Result<(), ManifestError> {
    let ok = path.starts_with('/')
        && path.len() <= 256
        && !path.split('/').any(|c| c == ".." || c == ".")
        && !path.contains('\0')
        && !path.contains("//");
    if ok {
        Ok(())
    } else {
        Err(field(
            "capabilities.preopen",
            format!("guest path {path:?} must be absolute, without '.', '..' or empty components"),
        ))
    }
}

pub(crate) fn is_lower_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn field(name: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Field { field: name, reason: reason.into() }
}

/// Parses an RFC 3339 timestamp, naming the field on error.
pub fn parse_rfc3339(text: &str, field_name: &'static str) -> Result<time::OffsetDateTime, ManifestError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| field(field_name, format!("{text:?} is not an RFC 3339 time: {e}")))
}

/// `20261129T101500Z`: a UTC time that sorts and is safe in a file name
/// (quarantine and recovery files).
pub fn format_compact_utc(at: time::OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Formats a time as RFC 3339 UTC with whole seconds, the form used in every
/// document we write.
pub fn format_rfc3339(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}
