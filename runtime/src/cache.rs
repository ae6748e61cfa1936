//! A compile cache of precompiled artifacts, keyed by what was verified and
//! authenticated with a secret only this host holds.
//!
//! Compiling with cranelift costs tens of milliseconds per module; loading a
//! precompiled artifact costs a fraction of one. But loading an artifact is
//! running native code that wasmtime trusts blindly, so the cache only ever
//! serves:
//! - modules that passed signature verification: the key is derived from the
//!   verified module's SHA-256, the engine fingerprint and the wasmtime
//!   version, and the only way in is a [`VerifiedBundle`];
//! - artifacts whose tag verifies: HMAC-SHA256 under the host's cache secret
//!   ([`CacheSecret`], 32 random bytes in a 0600 file of the state
//!   directory, outside the cache directory) over the verified module hash,
//!   the engine fingerprint, the wasmtime version and the artifact bytes.
//!   Someone who can write the cache directory cannot make a tag: an
//!   unkeyed hash beside the artifact (what this cache used to keep) can be
//!   recomputed by anyone, so another module's artifact with a fresh hash
//!   would have run under this module's name. A tag also binds the artifact
//!   to *this* module hash, so a valid entry copied to another key fails.
//!
//! The cache directory must be this user's own and not group- or
//! world-writable ([`signer::fsutil::ensure_private_dir`]); entries are read
//! without following links, only if they are regular files, and capped. An
//! entry that fails any check is moved aside into `rejected/` (kept as
//! evidence, never loaded) and the module is compiled again from the verified
//! bytes; the caller records the [`CacheRejection`] in the audit log
//! (`cache.rejected`).
//!
//! An entry is one file, `MAGIC ‖ tag ‖ artifact`, written atomically
//! (temporary file, fsync, rename), so a crash leaves a complete entry or
//! none.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use signer::fsutil::{FileMode, PrivateDirError, ReadCappedError, atomic_write, ensure_private_dir, read_capped};
use signer::verify::VerifiedBundle;
use wasmtime::{Engine, Module};
use zeroize::Zeroizing;

use crate::engine::{NightEngine, WASMTIME_VERSION};

/// Domain-separation tag of cache keys (file names).
const KEY_DOMAIN: &[u8] = b"nightcore-compile-cache-key-v2\0";
/// Domain-separation tag of artifact tags.
const TAG_DOMAIN: &[u8] = b"nightcore-compile-cache-tag-v2\0";
/// The first bytes of every entry.
const MAGIC: &[u8; 8] = b"NCCACHE2";
const TAG_BYTES: usize = 32;
const HEADER_BYTES: usize = MAGIC.len() + TAG_BYTES;
/// Artifacts larger than this are not read back: no real module compiles to
/// anything near it.
const MAX_ARTIFACT_BYTES: u64 = 512 * 1024 * 1024;
/// Where rejected entries are kept, inside the cache directory.
pub const REJECTED_DIR: &str = "rejected";
const SECRET_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// How a module was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// A valid artifact was loaded.
    Hit,
    /// No artifact existed; the module was compiled and stored.
    Compiled,
    /// An entry existed but failed its checks; it was moved aside and the
    /// module compiled again.
    Rebuilt { rejection: CacheRejection },
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

/// Why a cache entry was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache entry {entry} rejected ({}): {detail}", reason.code())]
pub struct CacheRejection {
    pub reason: RejectReason,
    /// The entry's path.
    pub entry: PathBuf,
    pub detail: String,
    /// Where the entry was moved; `None` if moving it failed (it is then
    /// overwritten by the new artifact, or left if that fails too).
    pub moved_to: Option<PathBuf>,
}

/// The kinds of [`CacheRejection`], each with a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The entry is a symlink, directory, FIFO or device.
    NotARegularFile,
    /// The entry is larger than any artifact can be.
    TooLarge,
    /// The entry does not start with the header this cache writes.
    Malformed,
    /// The tag does not verify: the entry was not written by this host for
    /// this module and engine (planted, copied from another key, or
    /// corrupted).
    TagMismatch,
    /// The tag verified but wasmtime refused the artifact.
    WasmtimeRefused,
    /// The entry could not be read.
    Unreadable,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::NotARegularFile => "not_a_regular_file",
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed_entry",
            RejectReason::TagMismatch => "tag_mismatch",
            RejectReason::WasmtimeRefused => "wasmtime_refused",
            RejectReason::Unreadable => "unreadable",
        }
    }
}

/// Why a module could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cranelift could not compile the module: {0}")]
pub struct CompileError(pub String);

/// Why the cache cannot be used at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheOpenError {
    #[error("compile cache directory: {0}")]
    Directory(#[from] PrivateDirError),
    #[error("compile cache secret {path}: {reason}")]
    Secret { path: PathBuf, reason: String },
}

/// The host's secret for cache tags: 32 random bytes, zeroized on drop.
#[derive(Clone)]
pub struct CacheSecret(Arc<Zeroizing<[u8; SECRET_BYTES]>>);

impl std::fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheSecret(..)")
    }
}

impl CacheSecret {
    /// A fresh random secret (kept in memory only: for tests and benches).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, bytes.as_mut());
        Self(Arc::new(bytes))
    }

    /// Loads the secret at `path`, creating it (0600, exclusively) if it does
    /// not exist. An existing file must be a regular file owned by this user
    /// and readable by no one else, or it is refused: a secret others can read
    /// or replace authenticates nothing.
    pub fn load_or_create(path: &Path) -> Result<Self, CacheOpenError> {
        use std::os::unix::fs::MetadataExt;
        let error = |reason: String| CacheOpenError::Secret { path: path.to_path_buf(), reason };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(format!("cannot create its directory: {e}")))?;
        }
        // Every run but the first finds it: read it without writing anything
        // (creating a candidate first would cost every run an fsync).
        let (file, meta) = match signer::fsutil::open_regular(path) {
            Ok(opened) => opened,
            Err(signer::fsutil::ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let fresh = Self::generate();
                // Created whole under a temporary name and linked into place,
                // so a reader never sees a partly written secret and a second
                // process racing this one keeps the first secret.
                match signer::fsutil::atomic_write_new(path, &fresh.0[..], FileMode::OwnerOnly) {
                    Ok(()) => return Ok(fresh),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(error(format!("cannot create it: {e}"))),
                }
                signer::fsutil::open_regular(path).map_err(|e| error(e.to_string()))?
            }
            Err(e) => return Err(error(e.to_string())),
        };
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(error(format!("owned by uid {}, not by this user (uid {euid})", meta.uid())));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(error(format!(
                "mode {:04o}: group or others may read it; it must be 0600",
                meta.mode() & 0o7777
            )));
        }
        if meta.len() != SECRET_BYTES as u64 {
            return Err(error(format!("{} bytes, not {SECRET_BYTES}", meta.len())));
        }
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        io::Read::read_exact(&mut &file, bytes.as_mut()).map_err(|e| error(format!("cannot read it: {e}")))?;
        Ok(Self(Arc::new(bytes)))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; 32 bytes is never refused.
        match HmacSha256::new_from_slice(&self.0[..]) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }
}

/// A directory of precompiled artifacts.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    secret: CacheSecret,
}

impl CompileCache {
    /// The cache in `dir` (created 0700 if missing), authenticated with
    /// `secret`. Refused if `dir` is not a directory of this user's that
    /// only this user may write.
    pub fn open(dir: impl Into<PathBuf>, secret: CacheSecret) -> Result<Self, CacheOpenError> {
        let dir = dir.into();
        ensure_private_dir(&dir)?;
        Ok(Self { dir, secret })
    }

    /// The cache in `dir` with the secret in the file `secret_path` (see
    /// [`CacheSecret::load_or_create`]), which must not lie inside `dir`:
    /// whoever can write the cache could then replace the secret too.
    pub fn open_with_secret_file(dir: impl Into<PathBuf>, secret_path: &Path) -> Result<Self, CacheOpenError> {
        let dir = dir.into();
        if secret_path.starts_with(&dir) {
            return Err(CacheOpenError::Secret {
                path: secret_path.to_path_buf(),
                reason: format!(
                    "it is inside the cache directory {}: whoever can write the cache could replace it",
                    dir.display()
                ),
            });
        }
        Self::open(dir, CacheSecret::load_or_create(secret_path)?)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for `verified` under `engine`.
    pub fn artifact_path(&self, engine: &NightEngine, verified: &VerifiedBundle) -> PathBuf {
        let mut key = Sha256::new();
        key.update(KEY_DOMAIN);
        key.update(verified.module_sha256().as_bytes());
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
        let rejection = match self.load_checked(engine, verified, &path) {
            Ok(Some(module)) => return Ok((module, CacheStatus::Hit)),
            Ok(None) => None,
            Err((reason, detail)) => {
                let moved_to = self.move_aside(&path);
                let rejection = CacheRejection { reason, entry: path.clone(), detail, moved_to };
                tracing::warn!(%rejection, "cached artifact rejected; recompiling from the verified bytes");
                Some(rejection)
            }
        };
        let module = compile(engine, verified.module())?;
        let status = match self.store(engine, verified, &path, &module) {
            Ok(()) => match rejection {
                Some(rejection) => CacheStatus::Rebuilt { rejection },
                None => CacheStatus::Compiled,
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot store compiled artifact");
                CacheStatus::NotStored { reason: e.to_string() }
            }
        };
        Ok((module, status))
    }

    /// The tag of `artifact` as the entry of `verified` under `engine`.
    fn tag(&self, engine: &NightEngine, verified: &VerifiedBundle, artifact: &[u8]) -> HmacSha256 {
        let mut mac = self.secret.mac();
        mac.update(TAG_DOMAIN);
        mac.update(verified.module_sha256().as_bytes());
        mac.update(&[0]);
        mac.update(engine.fingerprint().as_bytes());
        mac.update(&[0]);
        mac.update(WASMTIME_VERSION.as_bytes());
        mac.update(&[0]);
        mac.update(artifact);
        mac
    }

    /// `Ok(None)` when there is no entry; `Err` when there is one and it
    /// must not be used.
    fn load_checked(
        &self,
        engine: &NightEngine,
        verified: &VerifiedBundle,
        path: &Path,
    ) -> Result<Option<Module>, (RejectReason, String)> {
        let bytes = match read_capped(path, MAX_ARTIFACT_BYTES + HEADER_BYTES as u64) {
            Ok(bytes) => bytes,
            Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e @ ReadCappedError::NotAFile { .. }) => return Err((RejectReason::NotARegularFile, e.to_string())),
            Err(e @ ReadCappedError::TooLarge { .. }) => return Err((RejectReason::TooLarge, e.to_string())),
            Err(e) => return Err((RejectReason::Unreadable, e.to_string())),
        };
        if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
            return Err((RejectReason::Malformed, format!("{} bytes without this cache's header", bytes.len())));
        }
        let (tag, artifact) = bytes[MAGIC.len()..].split_at(TAG_BYTES);
        if self.tag(engine, verified, artifact).verify_slice(tag).is_err() {
            return Err((
                RejectReason::TagMismatch,
                format!(
                    "the tag does not verify for module sha256 {} under this host's secret",
                    verified.module_sha256()
                ),
            ));
        }
        deserialize_authenticated(engine.engine(), artifact)
            .map(Some)
            .map_err(|e| (RejectReason::WasmtimeRefused, format!("{e:#}")))
    }

    /// Moves a rejected entry into `rejected/` under a unique name.
    fn move_aside(&self, path: &Path) -> Option<PathBuf> {
        let rejected = self.dir.join(REJECTED_DIR);
        if let Err(e) = ensure_private_dir(&rejected) {
            tracing::warn!(error = %e, "cannot keep a rejected cache entry");
            return None;
        }
        let name = path.file_name()?.to_string_lossy().into_owned();
        let stamp = signer::manifest::format_compact_utc(time::OffsetDateTime::now_utc());
        for attempt in 0..1000u32 {
            let target = rejected.join(format!("{name}.{stamp}-{}-{attempt}", std::process::id()));
            // `renameat2(RENAME_NOREPLACE)`: never over an earlier piece of evidence.
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                path,
                rustix::fs::CWD,
                &target,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Some(target),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot move a rejected cache entry aside");
                    return None;
                }
            }
        }
        None
    }

    fn store(&self, engine: &NightEngine, verified: &VerifiedBundle, path: &Path, module: &Module) -> io::Result<()> {
        let artifact = module.serialize().map_err(|e| io::Error::other(format!("{e:#}")))?;
        let tag = self.tag(engine, verified, &artifact).finalize().into_bytes();
        let mut entry = Vec::with_capacity(HEADER_BYTES + artifact.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(&tag);
        entry.extend_from_slice(&artifact);
        atomic_write(path, &entry, FileMode::OwnerOnly)
    }
}

/// Compiles `bytes` without touching any cache.
pub fn compile(engine: &NightEngine, bytes: &[u8]) -> Result<Module, CompileError> {
    Module::new(engine.engine(), bytes).map_err(|e| CompileError(format!("{e:#}")))
}

/// Loads a precompiled artifact.
///
/// `Module::deserialize` is unsafe because it maps the bytes as native code
/// without validating them. It is sound here because the caller has just
/// verified the artifact's HMAC tag under this host's cache secret, which
/// only this runtime holds: so the bytes are this runtime's own serialisation
/// of the module whose verified hash the tag names, compiled by an engine
/// with this fingerprint and wasmtime version (which wasmtime checks again in
/// its header).
#[allow(unsafe_code)]
fn deserialize_authenticated(engine: &Engine, authenticated_artifact: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: see the function documentation: the bytes carry a valid tag of
    // this host's, made when this runtime serialised a verified module.
    unsafe { Module::deserialize(engine, authenticated_artifact) }
}
