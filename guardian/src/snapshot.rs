//! What is deployed for one tenant, read once without following links.
//!
//! A snapshot lists every entry of a tenant directory (`lstat`, never
//! `stat`), reads and hashes every regular file, and keeps the bytes of the
//! bundle files so that the very bytes that were compared are the ones that
//! get verified, stored or quarantined. Files are opened with `O_NOFOLLOW`
//! and `O_NONBLOCK` and checked with `fstat` after opening, so neither a link
//! swapped in nor a FIFO named `module.wasm` can redirect or stall a scan.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;
use signer::bundle::{MANIFEST_FILE, MODULE_FILE, ReadLimits, SIGNATURE_SUFFIX, SIGNATURES_DIR};
use signer::manifest::MAX_MANIFEST_BYTES;
use signer::minisign::MAX_SIGNATURE_FILE_BYTES;

use crate::digest::{FileRecord, bundle_digest};

/// A tenant directory with more entries than this is not listed further: a
/// real bundle has a handful, and the cap keeps a flood of files from costing
/// unbounded memory. The snapshot says it was cut short, which is drift.
pub const MAX_ENTRIES_PER_TENANT: usize = 4096;

/// Permission bits that let someone other than the owner change a file.
pub const GROUP_OTHER_WRITE: u32 = 0o022;

/// What kind of file system object an entry is, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Directory,
    File,
    Other,
    Symlink,
}

impl EntryKind {
    fn of(file_type: fs::FileType) -> Self {
        if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_dir() {
            EntryKind::Directory
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        }
    }

    /// The word used for a non-file in drift events, where a hash would go.
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Directory => "directory",
            EntryKind::File => "file",
            EntryKind::Other => "special file",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One entry below a tenant directory.
#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Hash and size of a regular file that was read completely.
    pub record: Option<FileRecord>,
    /// Why a regular file could not be read (too large, I/O error).
    pub problem: Option<String>,
    /// The size of a regular file over its cap (then also in `problem`).
    pub too_large: Option<u64>,
    /// The bytes of a bundle file, kept until [`TenantSnapshot::drop_bytes`].
    bytes: Option<Vec<u8>>,
}

impl SnapshotEntry {
    pub fn is_writable_by_others(&self) -> bool {
        self.kind != EntryKind::Symlink && self.mode & GROUP_OTHER_WRITE != 0
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    /// Moves the bytes out (the record stays), so that whoever judges them
    /// holds the only copy.
    pub fn take_bytes(&mut self) -> Option<Vec<u8>> {
        self.bytes.take()
    }
}

/// What a tenant path holds.
#[derive(Debug, Clone)]
pub enum TenantSnapshot {
    /// Nothing at the path.
    Missing,
    /// A symlink, file or special file where a directory belongs.
    NotADirectory { kind: EntryKind },
    /// A real directory.
    Directory {
        mode: u32,
        /// Relative paths (`module.wasm`, `signatures/X.minisig`, …) to entries.
        entries: BTreeMap<String, SnapshotEntry>,
        /// More than [`MAX_ENTRIES_PER_TENANT`] entries were present.
        truncated: bool,
    },
}

/// Whether `rel` is one of the files a bundle consists of.
pub fn is_bundle_file(rel: &str) -> bool {
    if rel == MODULE_FILE || rel == MANIFEST_FILE {
        return true;
    }
    match rel.strip_prefix(SIGNATURES_DIR).and_then(|r| r.strip_prefix('/')) {
        Some(name) => !name.contains('/') && name.ends_with(SIGNATURE_SUFFIX) && name.len() > SIGNATURE_SUFFIX.len(),
        None => false,
    }
}

/// The size cap of a bundle file at relative path `rel`, the same when a
/// tenant is snapshot and when a stored version is read back.
pub(crate) fn read_cap(rel: &str, limits: &ReadLimits) -> u64 {
    if rel == MANIFEST_FILE {
        MAX_MANIFEST_BYTES as u64
    } else if is_bundle_file(rel) && rel != MODULE_FILE {
        MAX_SIGNATURE_FILE_BYTES as u64
    } else {
        // `module.wasm` may carry its bundle (the single-file form); the
        // module part alone is held to the module cap when it is judged.
        limits.single_file_cap()
    }
}

impl TenantSnapshot {
    /// Reads the tenant path `dir`. Only a failure to list the directory
    /// itself is an error; a file that cannot be read is recorded in its
    /// entry, since that too is something to report.
    pub fn take(dir: &Path, limits: &ReadLimits) -> io::Result<TenantSnapshot> {
        let meta = match fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TenantSnapshot::Missing),
            Err(e) => return Err(e),
        };
        let kind = EntryKind::of(meta.file_type());
        if kind != EntryKind::Directory {
            return Ok(TenantSnapshot::NotADirectory { kind });
        }
        let mut entries = BTreeMap::new();
        let mut truncated = false;
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        while let Some((path, prefix)) = pending.pop() {
            let listing = match fs::read_dir(&path) {
                Ok(listing) => listing,
                // The tenant directory vanished while being read: report what is there now.
                Err(e) if e.kind() == io::ErrorKind::NotFound && prefix.is_empty() => {
                    return Ok(TenantSnapshot::Missing);
                }
                Err(e) => return Err(e),
            };
            for item in listing {
                let item = item?;
                if entries.len() >= MAX_ENTRIES_PER_TENANT {
                    truncated = true;
                    break;
                }
                let name = item.file_name().to_string_lossy().into_owned();
                let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                let meta = match fs::symlink_metadata(item.path()) {
                    Ok(meta) => meta,
                    // Removed between listing and lstat: it is simply not there.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let kind = EntryKind::of(meta.file_type());
                let mut entry = SnapshotEntry {
                    kind,
                    mode: meta.mode() & 0o7777,
                    record: None,
                    problem: None,
                    too_large: None,
                    bytes: None,
                };
                match kind {
                    EntryKind::File => read_into(&item.path(), &rel, limits, &mut entry),
                    // Only `signatures/` is descended into: any other directory is
                    // unexpected as a whole, and what it holds is never run.
                    EntryKind::Directory if rel == SIGNATURES_DIR => pending.push((item.path(), rel.clone())),
                    _ => {}
                }
                entries.insert(rel, entry);
            }
        }
        Ok(TenantSnapshot::Directory { mode: meta.mode() & 0o7777, entries, truncated })
    }

    /// The bundle files that were read, with their hashes: the content that
    /// verification judges and the store keeps.
    pub fn content_records(&self) -> BTreeMap<String, FileRecord> {
        match self {
            TenantSnapshot::Directory { entries, .. } => entries
                .iter()
                .filter(|(rel, e)| is_bundle_file(rel) && e.kind == EntryKind::File)
                .filter_map(|(rel, e)| e.record.clone().map(|r| (rel.clone(), r)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// [`bundle_digest`] of [`Self::content_records`].
    pub fn content_digest(&self) -> String {
        bundle_digest(&self.content_records())
    }

    /// Frees the file bytes once a snapshot turned out clean.
    /// Bytes of file contents this snapshot holds in memory.
    pub fn held_bytes(&self) -> u64 {
        match self {
            TenantSnapshot::Directory { entries, .. } => {
                entries.values().filter_map(|e| e.bytes.as_ref()).map(|b| b.len() as u64).sum()
            }
            _ => 0,
        }
    }

    pub fn drop_bytes(&mut self) {
        if let TenantSnapshot::Directory { entries, .. } = self {
            for entry in entries.values_mut() {
                entry.bytes = None;
            }
        }
    }

    pub fn entries(&self) -> Option<&BTreeMap<String, SnapshotEntry>> {
        match self {
            TenantSnapshot::Directory { entries, .. } => Some(entries),
            _ => None,
        }
    }
}

fn read_into(path: &Path, rel: &str, limits: &ReadLimits, entry: &mut SnapshotEntry) {
    let cap = read_cap(rel, limits);
    match read_file(path, cap) {
        Ok((bytes, mode)) => {
            entry.mode = mode;
            entry.record = Some(FileRecord::of(&bytes));
            if is_bundle_file(rel) {
                entry.bytes = Some(bytes);
            }
        }
        Err(ReadProblem::NotAFile) => entry.kind = EntryKind::Other,
        Err(ReadProblem::TooLarge(size)) => {
            entry.problem = Some(format!("{size} bytes, over the {cap}-byte cap"));
            entry.too_large = Some(size);
        }
        Err(ReadProblem::Io(e)) => entry.problem = Some(e.to_string()),
    }
}

enum ReadProblem {
    NotAFile,
    TooLarge(u64),
    Io(io::Error),
}

/// Opens without following links or blocking, checks the opened object is a
/// regular file within the cap, and reads it. Returns the bytes and the mode
/// of the very inode that was read.
fn read_file(path: &Path, cap: u64) -> Result<(Vec<u8>, u32), ReadProblem> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file: File = OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            ReadProblem::NotAFile
        } else {
            ReadProblem::Io(e)
        }
    })?;
    let meta = file.metadata().map_err(ReadProblem::Io)?;
    if !meta.is_file() {
        return Err(ReadProblem::NotAFile);
    }
    if meta.len() > cap {
        return Err(ReadProblem::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(ReadProblem::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadProblem::TooLarge(bytes.len() as u64));
    }
    Ok((bytes, meta.mode() & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bundle_files_are_recognised() {
        assert!(is_bundle_file("module.wasm"));
        assert!(is_bundle_file("manifest.json"));
        assert!(is_bundle_file("signatures/ABC.minisig"));
        assert!(!is_bundle_file("signatures/.minisig"));
        assert!(!is_bundle_file("signatures/a/b.minisig"));
        assert!(!is_bundle_file("signatures/readme.txt"));
        assert!(!is_bundle_file("notes.txt"));
    }

    #[test]
    fn snapshot_lists_links_modes_and_extras_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        fs::create_dir_all(t.join("signatures")).unwrap();
        fs::write(t.join("module.wasm"), b"m").unwrap();
        fs::write(dir.path().join("elsewhere"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), t.join("manifest.json")).unwrap();
        fs::write(t.join("signatures/A.minisig"), b"s").unwrap();
        fs::set_permissions(t.join("signatures/A.minisig"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::create_dir(t.join("extra")).unwrap();
        fs::write(t.join("extra/inside"), b"i").unwrap();
        let snap = TenantSnapshot::take(&t, &ReadLimits::default()).unwrap();
        let entries = snap.entries().unwrap();
        assert_eq!(entries["manifest.json"].kind, EntryKind::Symlink);
        assert!(entries["manifest.json"].record.is_none());
        assert_eq!(entries["module.wasm"].bytes(), Some(&b"m"[..]));
        assert!(entries["signatures/A.minisig"].is_writable_by_others());
        assert_eq!(entries["extra"].kind, EntryKind::Directory);
        assert!(!entries.contains_key("extra/inside"));
        let records = snap.content_records();
        assert_eq!(records.keys().collect::<Vec<_>>(), ["module.wasm", "signatures/A.minisig"]);
    }

    #[test]
    fn tenant_path_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ReadLimits::default();
        assert!(matches!(TenantSnapshot::take(&dir.path().join("none"), &limits).unwrap(), TenantSnapshot::Missing));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
        assert!(matches!(
            TenantSnapshot::take(&dir.path().join("link"), &limits).unwrap(),
            TenantSnapshot::NotADirectory { kind: EntryKind::Symlink }
        ));
    }

    #[test]
    fn a_fifo_does_not_block_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        fs::create_dir(&t).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, t.join("module.wasm"), rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
        let snap = TenantSnapshot::take(&t, &ReadLimits::default()).unwrap();
        assert_eq!(snap.entries().unwrap()["module.wasm"].kind, EntryKind::Other);
    }
}
