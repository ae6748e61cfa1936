//! A compile cache of precompiled artifacts, keyed by what was verified.
//!
//! Compiling with cranelift costs tens of milliseconds per module; loading a
//! precompiled artifact costs a fraction of one. But loading an artifact is
//! running native code that wasmtime trusts blindly, so the cache only ever
//! serves:
//! - modules that passed signature verification: the key is derived from the
//!   verified module's SHA-256, the engine fingerprint and the wasmtime
//!   version, and the only way in is a [`VerifiedBundle`];
//! - artifacts whose own SHA-256, recorded beside them when they were written,
//!   still matches: a truncated, corrupted or swapped file is rebuilt, never
//!   loaded.
//!
//! Artifacts are written atomically (temporary file, fsync, rename), the
//! artifact before its hash file, so a crash leaves either a complete entry or
//! one that is treated as missing.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use signer::fsutil::{FileMode, atomic_write};
use signer::verify::VerifiedBundle;
use wasmtime::{Engine, Module};

use crate::engine::{NightEngine, WASMTIME_VERSION};

/// Domain-separation tag of cache keys.
const KEY_DOMAIN: &[u8] = b"nightcore-compile-cache-key-v1\0";
/// Domain-separation tag of artifact hashes.
const ARTIFACT_DOMAIN: &[u8] = b"nightcore-compile-cache-artifact-v1\0";
/// Artifacts larger than this are not read back: no real module compiles to
/// anything near it.
const MAX_ARTIFACT_BYTES: u64 = 512 * 1024 * 1024;

/// How a module was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// A valid artifact was loaded.
    Hit,
    /// No artifact existed; the module was compiled and stored.
    Compiled,
    /// An artifact existed but failed its check; it was compiled again.
    Rebuilt { reason: String },
    /// The module was compiled but the artifact could not be stored.
    NotStored { reason: String },
    /// No cache was used (no cache configured, or an unverified module).
    Bypassed,
}

impl CacheStatus {
    /// A stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Compiled => "compiled",
            CacheStatus::Rebuilt { .. } => "rebuilt",
            CacheStatus::NotStored { .. } => "not_stored",
            CacheStatus::Bypassed => "bypassed",
        }
    }
}

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cranelift could not compile the module: {0}")]
pub struct CompileError(pub String);

/// A directory of precompiled artifacts.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact path for `verified` under `engine`.
    pub fn artifact_path(&self, engine: &NightEngine, verified: &VerifiedBundle) -> PathBuf {
        let mut key = Sha256::new();
        key.update(KEY_DOMAIN);
        key.update(verified.module_sha256.as_bytes());
        key.update([0]);
        key.update(engine.fingerprint().as_bytes());
        key.update([0]);
        key.update(WASMTIME_VERSION.as_bytes());
        self.dir.join(format!("{}.cwasm", hex::encode(key.finalize())))
    }

    /// Loads the precompiled artifact of `verified`, or compiles the verified
    /// bytes and stores the result. Cache trouble never fails the call: it is
    /// reported in the [`CacheStatus`] and the module is compiled instead.
    pub fn load_or_compile(
        &self,
        engine: &NightEngine,
        verified: &VerifiedBundle,
    ) -> Result<(Module, CacheStatus), CompileError> {
        let path = self.artifact_path(engine, verified);
        let rebuild_reason = match load_checked(engine.engine(), &path) {
            Ok(Some(module)) => return Ok((module, CacheStatus::Hit)),
            Ok(None) => None,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "cached artifact rejected; recompiling");
                Some(reason)
            }
        };
        let module = compile(engine, &verified.module)?;
        let status = match store(&self.dir, &path, &module) {
            Ok(()) => match rebuild_reason {
                Some(reason) => CacheStatus::Rebuilt { reason },
                None => CacheStatus::Compiled,
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot store compiled artifact");
                CacheStatus::NotStored { reason: e.to_string() }
            }
        };
        Ok((module, status))
    }
}

/// Compiles `bytes` without touching any cache.
pub fn compile(engine: &NightEngine, bytes: &[u8]) -> Result<Module, CompileError> {
    Module::new(engine.engine(), bytes).map_err(|e| CompileError(format!("{e:#}")))
}

fn hash_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

fn artifact_digest(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(ARTIFACT_DOMAIN);
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// `Ok(None)` when there is no complete entry; `Err(reason)` when there is one
/// and it must not be used.
fn load_checked(engine: &Engine, path: &Path) -> Result<Option<Module>, String> {
    let recorded = match std::fs::read_to_string(hash_path(path)) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the recorded hash: {e}")),
    };
    let bytes = match signer::fsutil::read_capped(path, MAX_ARTIFACT_BYTES) {
        Ok(bytes) => bytes,
        Err(signer::fsutil::ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err("the artifact is missing but its hash is recorded".to_string());
        }
        Err(e) => return Err(e.to_string()),
    };
    let actual = artifact_digest(&bytes);
    if actual != recorded {
        return Err(format!("artifact sha256 {actual} does not match the recorded {recorded}"));
    }
    deserialize_checked(engine, &bytes).map(Some).map_err(|e| format!("wasmtime refused the artifact: {e:#}"))
}

/// Loads a precompiled artifact.
///
/// `Module::deserialize` is unsafe because it maps the bytes as native code
/// without validating them. It is sound here because the caller has just
/// checked the bytes against the SHA-256 recorded when this runtime itself
/// serialised them from a module it had verified and compiled; the cache key
/// includes the engine fingerprint and wasmtime version, so the artifact was
/// produced by an engine with this exact configuration (and wasmtime checks
/// that again in its header). The only remaining trust is in the cache
/// directory's permissions, which are those of the state directory.
#[allow(unsafe_code)]
fn deserialize_checked(engine: &Engine, checked_bytes: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: see the function documentation: the bytes are this runtime's own
    // serialisation of a verified module, checked against their recorded hash.
    unsafe { Module::deserialize(engine, checked_bytes) }
}

fn store(dir: &Path, path: &Path, module: &Module) -> io::Result<()> {
    let bytes = module.serialize().map_err(|e| io::Error::other(format!("{e:#}")))?;
    std::fs::create_dir_all(dir)?;
    atomic_write(path, &bytes, FileMode::OwnerOnly)?;
    atomic_write(&hash_path(path), format!("{}\n", artifact_digest(&bytes)).as_bytes(), FileMode::OwnerOnly)
}
