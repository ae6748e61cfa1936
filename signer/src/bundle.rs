//! Bundles: the on-disk unit that is signed, shipped, deployed and run.
//!
//! ```text
//! BUNDLE/
//!   module.wasm
//!   manifest.json              canonical JSON, see `manifest`
//!   signatures/<KEYID>.minisig one minisign signature over manifest.json per signer
//! ```
//!
//! A bundle is read exactly once into memory ([`BundleBytes::read`]), with every
//! file size-capped before it is read; verification and execution then work on
//! those bytes only, so nothing on disk can change between check and use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::{FileMode, ReadCappedError, atomic_write, read_capped, sync_dir};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest, ManifestError};
use crate::minisign::{MAX_SIGNATURE_FILE_BYTES, Signature};

pub const MODULE_FILE: &str = "module.wasm";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURES_DIR: &str = "signatures";
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// Size caps applied while reading a bundle.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    pub max_module_bytes: u64,
    pub max_signatures: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self { max_module_bytes: 64 * 1024 * 1024, max_signatures: 32 }
    }
}

impl ReadLimits {
    /// The largest `module.wasm` read: the module cap plus room for an
    /// embedded manifest and signatures (the single-file form). The module
    /// part alone is then held to `max_module_bytes`.
    pub fn single_file_cap(&self) -> u64 {
        self.max_module_bytes.saturating_add(crate::embed::section_allowance(self.max_signatures))
    }
}

/// Why a directory's files do not make a bundle; see [`BundleBytes::assemble`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    #[error("manifest.json is missing")]
    ManifestMissing,
    #[error("module.wasm is {size} bytes, over the {max}-byte cap")]
    ModuleTooLarge { size: u64, max: u64 },
    #[error(transparent)]
    SingleFile(crate::embed::EmbedError),
}

/// Whether a directory holding only `module.wasm` may be read as the
/// single-file form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SingleFile {
    Accepted,
    Refused,
}

/// One signature file as read from `signatures/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// The raw bytes of a bundle, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleBytes {
    pub module: Vec<u8>,
    pub manifest: Vec<u8>,
    pub signatures: Vec<SignatureFile>,
}

/// Why a bundle could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("{path} is missing")]
    Missing { path: PathBuf },
    #[error(transparent)]
    Read(#[from] ReadCappedError),
    #[error("{path} has {count} signature files, over the cap of {max}")]
    TooManySignatures { path: PathBuf, count: usize, max: usize },
    #[error("{path} exists already; refusing to overwrite a bundle")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: {source}")]
    SingleFile { path: PathBuf, source: crate::embed::EmbedError },
    #[error("{path} is {kind}, not a directory of the bundle's own; refusing to write a signature through it")]
    SignaturesNotADirectory { path: PathBuf, kind: &'static str },
}

impl BundleError {
    /// A stable snake_case code for JSON output and audit events.
    pub fn reason_code(&self) -> &'static str {
        match self {
            BundleError::Missing { .. } => "bundle_incomplete",
            BundleError::Read(ReadCappedError::TooLarge { .. }) => "file_too_large",
            BundleError::Read(ReadCappedError::NotAFile { .. }) => "not_a_regular_file",
            BundleError::TooManySignatures { .. } => "too_many_signatures",
            BundleError::SingleFile { source, .. } => source.reason_code(),
            BundleError::Read(_) | BundleError::AlreadyExists { .. } | BundleError::Io { .. } => "bundle_unreadable",
            BundleError::Manifest(_) => "malformed_manifest",
            BundleError::SignaturesNotADirectory { .. } => "signatures_not_a_directory",
        }
    }

    /// Whether this is about the bytes offered (too large, malformed) rather
    /// than the host failing to read them.
    pub fn is_about_content(&self) -> bool {
        matches!(
            self,
            BundleError::Read(ReadCappedError::TooLarge { .. } | ReadCappedError::NotAFile { .. })
                | BundleError::TooManySignatures { .. }
                | BundleError::SingleFile { .. }
                | BundleError::Manifest(_)
        )
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.to_path_buf(), source }
}

impl BundleBytes {
    /// Reads `module.wasm`, `manifest.json` and every `signatures/*.minisig`.
    ///
    /// A directory holding `module.wasm` but neither `manifest.json` nor any
    /// `signatures/*.minisig` is the single-file form deployed as a directory
    /// (see [`crate::embed`]): its module is unpacked exactly as a single
    /// file given by path, with the same errors.
    pub fn read(dir: &Path, limits: &ReadLimits) -> Result<Self, BundleError> {
        Self::read_dir(dir, limits, SingleFile::Accepted)
    }

    /// Reads a bundle of separate files only: the form that is signed, whose
    /// manifest and signature files a signer adds to.
    pub fn read_separate_files(dir: &Path, limits: &ReadLimits) -> Result<Self, BundleError> {
        Self::read_dir(dir, limits, SingleFile::Refused)
    }

    fn read_dir(dir: &Path, limits: &ReadLimits, single_file: SingleFile) -> Result<Self, BundleError> {
        let module_path = dir.join(MODULE_FILE);
        let module = read_required(&module_path, limits.single_file_cap())?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = match read_required(&manifest_path, MAX_MANIFEST_BYTES as u64) {
            Ok(manifest) => Some(manifest),
            Err(BundleError::Missing { .. }) => None,
            Err(e) => return Err(e),
        };
        if manifest.is_none() && single_file == SingleFile::Refused {
            return Err(BundleError::Missing { path: manifest_path });
        }
        let signatures = read_signatures(&dir.join(SIGNATURES_DIR), limits)?;
        Self::assemble(module, manifest, signatures, limits).map_err(|e| match e {
            AssembleError::ManifestMissing => BundleError::Missing { path: manifest_path },
            AssembleError::ModuleTooLarge { size, max } => {
                BundleError::Read(ReadCappedError::TooLarge { path: module_path, size, max })
            }
            AssembleError::SingleFile(source) => BundleError::SingleFile { path: module_path, source },
        })
    }

    /// The one rule for what a bundle directory's files hold, shared by every
    /// reader (this module, the guardian's snapshots and store): `module.wasm`
    /// with `manifest.json` and the signature files; or, with neither a
    /// manifest nor any signature file, the single-file form, unpacked from
    /// `module.wasm` (a module without the section is a bundle missing its
    /// manifest). The module is held to `max_module_bytes` either way.
    pub fn assemble(
        module: Vec<u8>,
        manifest: Option<Vec<u8>>,
        signatures: Vec<SignatureFile>,
        limits: &ReadLimits,
    ) -> Result<Self, AssembleError> {
        match manifest {
            Some(manifest) => {
                if module.len() as u64 > limits.max_module_bytes {
                    return Err(AssembleError::ModuleTooLarge {
                        size: module.len() as u64,
                        max: limits.max_module_bytes,
                    });
                }
                Ok(Self { module, manifest, signatures })
            }
            None if signatures.is_empty() => crate::embed::extract(module, limits).map_err(|e| match e {
                crate::embed::EmbedError::NoSection => AssembleError::ManifestMissing,
                e => AssembleError::SingleFile(e),
            }),
            None => Err(AssembleError::ManifestMissing),
        }
    }

    /// Reads a file that may be a single-file module, capped at
    /// [`ReadLimits::single_file_cap`].
    pub fn read_single_file_bytes(path: &Path, limits: &ReadLimits) -> Result<Vec<u8>, BundleError> {
        read_required(path, limits.single_file_cap())
    }

    /// Unpacks a single-file module read from `path`.
    pub fn from_single_file(path: &Path, file: Vec<u8>, limits: &ReadLimits) -> Result<Self, BundleError> {
        crate::embed::extract(file, limits)
            .map_err(|source| BundleError::SingleFile { path: path.to_path_buf(), source })
    }

    /// Reads a bundle directory, or a single-file module carrying its bundle in
    /// a custom section (see [`crate::embed`]): both verify the same way.
    pub fn read_any(path: &Path, limits: &ReadLimits) -> Result<Self, BundleError> {
        if path.is_dir() {
            return Self::read(path, limits);
        }
        let file = Self::read_single_file_bytes(path, limits)?;
        Self::from_single_file(path, file, limits)
    }
}

/// Every `*.minisig` in `sig_dir`, in name order; none if it does not exist.
fn read_signatures(sig_dir: &Path, limits: &ReadLimits) -> Result<Vec<SignatureFile>, BundleError> {
    let mut signatures = Vec::new();
    match fs::read_dir(sig_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(io_error(sig_dir))?;
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if !file_name.ends_with(SIGNATURE_SUFFIX) {
                    continue;
                }
                if signatures.len() == limits.max_signatures {
                    return Err(BundleError::TooManySignatures {
                        path: sig_dir.to_path_buf(),
                        count: limits.max_signatures + 1,
                        max: limits.max_signatures,
                    });
                }
                let bytes = read_capped(&entry.path(), MAX_SIGNATURE_FILE_BYTES as u64)?;
                signatures.push(SignatureFile { file_name, bytes });
            }
        }
        // No signatures directory is an unsigned bundle, which verification reports.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(sig_dir)(e)),
    }
    // Directory order is not stable; make everything downstream deterministic.
    signatures.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(signatures)
}

fn read_required(path: &Path, max: u64) -> Result<Vec<u8>, BundleError> {
    match read_capped(path, max) {
        Err(ReadCappedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Err(BundleError::Missing { path: path.to_path_buf() })
        }
        other => Ok(other?),
    }
}

/// Writes a new unsigned bundle at `out` (which must not exist yet): the files are
/// assembled in a temporary directory beside it and renamed into place, so a
/// crash never leaves a half-written bundle at `out`.
pub fn write_unsigned(out: &Path, module: &[u8], manifest: &Manifest) -> Result<(), BundleError> {
    write_parts(out, module, &manifest.to_canonical_bytes()?, &[])
}

/// Writes `bundle` as a new bundle directory at `out` (which must not exist
/// yet), byte for byte, the same way as [`write_unsigned`]: assembled beside
/// it and renamed into place whole.
pub fn write_bundle(out: &Path, bundle: &BundleBytes) -> Result<(), BundleError> {
    write_parts(out, &bundle.module, &bundle.manifest, &bundle.signatures)
}

fn write_parts(out: &Path, module: &[u8], manifest: &[u8], signatures: &[SignatureFile]) -> Result<(), BundleError> {
    // Signature file names come from the bytes being written (a single
    // file's section): only plain `*.minisig` names, never a path.
    if let Some(bad) = signatures
        .iter()
        .find(|s| s.file_name.contains('/') || !s.file_name.ends_with(SIGNATURE_SUFFIX) || s.file_name.starts_with('.'))
    {
        return Err(BundleError::Io {
            path: out.join(SIGNATURES_DIR),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not a signature file name", bad.file_name),
            ),
        });
    }
    if out.exists() {
        return Err(BundleError::AlreadyExists { path: out.to_path_buf() });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_error(&parent))?;
    let tmp = crate::fsutil::temp_path_beside(out);
    let result = (|| {
        fs::create_dir(&tmp).map_err(io_error(&tmp))?;
        let sig_dir = tmp.join(SIGNATURES_DIR);
        fs::create_dir(&sig_dir).map_err(io_error(&tmp))?;
        atomic_write(&tmp.join(MODULE_FILE), module, FileMode::Public).map_err(io_error(&tmp))?;
        atomic_write(&tmp.join(MANIFEST_FILE), manifest, FileMode::Public).map_err(io_error(&tmp))?;
        for signature in signatures {
            atomic_write(&sig_dir.join(&signature.file_name), &signature.bytes, FileMode::Public)
                .map_err(io_error(&sig_dir))?;
        }
        sync_dir(&tmp).map_err(io_error(&tmp))?;
        // `rename` would replace an empty directory that appeared meanwhile.
        rustix::fs::renameat_with(rustix::fs::CWD, &tmp, rustix::fs::CWD, out, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(|e| match e {
                rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY => {
                    BundleError::AlreadyExists { path: out.to_path_buf() }
                }
                e => io_error(out)(e.into()),
            })?;
        sync_dir(&parent).map_err(io_error(&parent))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Path of the signature file a key writes into a bundle.
pub fn signature_path(bundle: &Path, signature: &Signature) -> PathBuf {
    bundle.join(SIGNATURES_DIR).join(format!("{}{SIGNATURE_SUFFIX}", signature.key_id))
}

/// Adds (or replaces) one signer's signature file in a bundle, atomically.
///
/// The bundle may come from someone else: a `signatures` that is a symlink
/// (or anything but a plain directory) would make this write wherever it
/// points, so it is refused. A signature file that is not a regular file is
/// refused too (see [`atomic_write`]).
pub fn write_signature(bundle: &Path, signature: &Signature) -> Result<PathBuf, BundleError> {
    let dir = bundle.join(SIGNATURES_DIR);
    match fs::symlink_metadata(&dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(BundleError::SignaturesNotADirectory { path: dir, kind: crate::fsutil::kind_of(&meta) });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir).map_err(io_error(&dir))?,
        Err(e) => return Err(io_error(&dir)(e)),
    }
    let path = signature_path(bundle, signature);
    atomic_write(&path, signature.to_file_text().as_bytes(), FileMode::Public).map_err(io_error(&path))?;
    Ok(path)
}
