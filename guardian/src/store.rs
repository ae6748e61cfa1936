//! The content-addressed store of every bundle version the guardian has
//! verified: the only source rollbacks restore from.
//!
//! ```text
//! STATE/store/<digest>/module.wasm
//!                      manifest.json
//!                      signatures/<KEYID>.minisig
//! ```
//!
//! `<digest>` is [`crate::digest::bundle_digest`] over every file of the
//! bundle, signatures included (not the manifest hash alone), because a
//! rollback must put back exactly the files that were verified. An entry is
//! written into a temporary directory, flushed, and renamed into place, so an
//! entry that exists is complete; reading one re-hashes every file and
//! refuses an entry whose bytes no longer match its name.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use signer::bundle::{
    AssembleError, BundleBytes, MANIFEST_FILE, MODULE_FILE, ReadLimits, SIGNATURES_DIR, SignatureFile,
};
use signer::fsutil::{read_capped, sync_dir, temp_path_beside};

use crate::digest::{FileRecord, bundle_digest};
use crate::snapshot::{is_bundle_file, read_cap};

/// The files of one bundle version by relative path, with their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl BundleFiles {
    /// Builds a bundle from relative paths and bytes; paths that are not
    /// bundle files (see [`is_bundle_file`]) are refused.
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Result<Self, StoreError> {
        if let Some(bad) = files.keys().find(|rel| !is_bundle_file(rel)) {
            return Err(StoreError::NotABundleFile { path: bad.clone() });
        }
        Ok(Self { files })
    }

    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    pub fn records(&self) -> BTreeMap<String, FileRecord> {
        self.files.iter().map(|(rel, bytes)| (rel.clone(), FileRecord::of(bytes))).collect()
    }

    pub fn digest(&self) -> String {
        bundle_digest(&self.records())
    }

    /// The same bytes in the form the signer's verifier takes, by the
    /// signer's own rule for which form the files are in
    /// ([`BundleBytes::assemble`]: a lone `module.wasm` is the single-file form).
    pub fn to_bundle_bytes(&self, limits: &ReadLimits) -> Result<BundleBytes, AssembleError> {
        let signatures = self
            .files
            .iter()
            .filter_map(|(rel, bytes)| {
                let name = rel.strip_prefix(SIGNATURES_DIR)?.strip_prefix('/')?;
                Some(SignatureFile { file_name: name.to_string(), bytes: bytes.clone() })
            })
            .collect();
        BundleBytes::assemble(
            self.files.get(MODULE_FILE).cloned().unwrap_or_default(),
            self.files.get(MANIFEST_FILE).cloned(),
            signatures,
            limits,
        )
    }
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("store entry {digest} is missing")]
    Missing { digest: String },
    #[error("store entry {digest} is corrupt: {reason}")]
    Corrupt { digest: String, reason: String },
    #[error("{path} is not a file a bundle consists of")]
    NotABundleFile { path: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Mode of every directory the guardian writes into a deploy tree or store.
pub const DIR_MODE: u32 = 0o755;
/// Mode of every file the guardian writes into a deploy tree or store.
pub const FILE_MODE: u32 = 0o644;

/// When what [`write_tree`] wrote must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Every file and directory flushed before returning.
    Immediate,
    /// Flushed later, all at once, by [`Store::sync`].
    Deferred,
}

/// Writes `files` into a new directory `dir` (which must not exist), with
/// modes 0755/0644 set exactly whatever the umask.
pub(crate) fn write_tree(dir: &Path, files: &BundleFiles, durability: Durability) -> io::Result<()> {
    make_dir(dir)?;
    write_into(dir, files, durability)
}

/// Like [`write_tree`], into the empty directory `dir` that the caller made.
pub(crate) fn write_into(dir: &Path, files: &BundleFiles, durability: Durability) -> io::Result<()> {
    let mut dirs = vec![dir.to_path_buf()];
    for (rel, bytes) in files.files() {
        let path = dir.join(rel);
        if let Some(parent) = path.parent().filter(|p| !dirs.iter().any(|d| d == p)) {
            make_dir(parent)?;
            dirs.push(parent.to_path_buf());
        }
        let mut file = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&path)?;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(bytes)?;
        if durability == Durability::Immediate {
            file.sync_all()?;
        }
    }
    if durability == Durability::Immediate {
        // Deepest first, so each directory's entries are durable before its parent's.
        for d in dirs.iter().rev() {
            sync_dir(d)?;
        }
    }
    Ok(())
}

/// Creates `dir` (failing with `AlreadyExists` on anything there) with the
/// store's directory mode.
pub(crate) fn make_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// The store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(root).map_err(io_error(root))?;
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.root.join(digest)
    }

    pub fn contains(&self, digest: &str) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_dir())
    }

    /// Stores `files` under their digest (a no-op if that entry exists) and
    /// returns the digest. The entry is complete when it appears (it is
    /// renamed into place) but only durable after [`Store::sync`], which must
    /// come before anything that names the entry is written: one file system
    /// flush for a whole batch instead of several per bundle.
    pub fn put(&self, files: &BundleFiles) -> Result<String, StoreError> {
        let digest = files.digest();
        let target = self.path(&digest);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let tmp = temp_path_beside(&target);
        let result = write_tree(&tmp, files, Durability::Deferred).and_then(|()| fs::rename(&tmp, &target));
        if let Err(source) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(StoreError::Io { path: target, source });
        }
        Ok(digest)
    }

    /// Makes every entry written so far durable (`syncfs` on the store's file system).
    pub fn sync(&self) -> Result<(), StoreError> {
        let dir = fs::File::open(&self.root).map_err(io_error(&self.root))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::Io { path: self.root.clone(), source: e.into() })
    }

    /// Reads the entry `digest`, re-hashing every file: an entry whose bytes
    /// do not produce its name, or that holds anything but bundle files, is
    /// [`StoreError::Corrupt`].
    pub fn get(&self, digest: &str, limits: &ReadLimits) -> Result<BundleFiles, StoreError> {
        let dir = self.path(digest);
        let corrupt = |reason: String| StoreError::Corrupt { digest: digest.to_string(), reason };
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(corrupt("not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { digest: digest.to_string() });
            }
            Err(e) => return Err(io_error(&dir)(e)),
        }
        let mut files = BTreeMap::new();
        let mut pending = vec![(dir.clone(), String::new())];
        while let Some((path, prefix)) = pending.pop() {
            for item in fs::read_dir(&path).map_err(io_error(&path))? {
                let item = item.map_err(io_error(&path))?;
                let name = item.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                let file_type = item.file_type().map_err(io_error(&item.path()))?;
                if rel == SIGNATURES_DIR && file_type.is_dir() {
                    pending.push((item.path(), rel));
                    continue;
                }
                if !file_type.is_file() || !is_bundle_file(&rel) {
                    return Err(corrupt(format!("unexpected entry {rel}")));
                }
                let bytes = read_capped(&item.path(), read_cap(&rel, limits)).map_err(|e| corrupt(e.to_string()))?;
                files.insert(rel, bytes);
            }
        }
        let files = BundleFiles { files };
        let found = files.digest();
        if found != digest {
            return Err(corrupt(format!("its files hash to {found}")));
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BundleFiles {
        let mut files = BTreeMap::new();
        files.insert("module.wasm".to_string(), b"\0asm".to_vec());
        files.insert("manifest.json".to_string(), b"{}".to_vec());
        files.insert("signatures/A.minisig".to_string(), b"sig".to_vec());
        BundleFiles::new(files).unwrap()
    }

    #[test]
    fn put_then_get_round_trips_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let digest = store.put(&sample()).unwrap();
        assert_eq!(store.put(&sample()).unwrap(), digest);
        store.sync().unwrap();
        assert_eq!(store.get(&digest, &ReadLimits::default()).unwrap(), sample());
        let mode = fs::metadata(store.path(&digest).join("module.wasm")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
        // Only the entry is left: no temporary directories.
        assert_eq!(fs::read_dir(dir.path().join("store")).unwrap().count(), 1);
    }

    #[test]
    fn a_single_file_module_over_the_module_cap_reads_back() {
        // A single file's module.wasm is its module part (held to the module
        // cap) plus the bundle section: the store must read back what the
        // snapshot accepted, or a rollback of it would fail.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let limits = ReadLimits { max_module_bytes: 100, ..ReadLimits::default() };
        let files = BundleFiles::new(BTreeMap::from([("module.wasm".to_string(), vec![7; 150])])).unwrap();
        let digest = store.put(&files).unwrap();
        assert_eq!(store.get(&digest, &limits).unwrap(), files);
    }

    #[test]
    fn a_changed_byte_makes_the_entry_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = store.put(&sample()).unwrap();
        fs::write(store.path(&digest).join("module.wasm"), b"\0asn").unwrap();
        let err = store.get(&digest, &ReadLimits::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("its files hash to"), "{err}");
        assert!(matches!(store.get("00", &ReadLimits::default()), Err(StoreError::Missing { .. })));
    }

    #[test]
    fn non_bundle_paths_are_refused() {
        let mut files = BTreeMap::new();
        files.insert("../escape".to_string(), Vec::new());
        assert!(matches!(BundleFiles::new(files), Err(StoreError::NotABundleFile { .. })));
    }
}
