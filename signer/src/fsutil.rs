//! Crash-safe file writes shared by every Night Core component.
//!
//! A reader must only ever see the old bytes or the new bytes of a file we
//! replace, never a torn mix, even across a power cut. So every write goes to a
//! temporary file in the same directory, is flushed to disk, renamed over the
//! target (atomic on POSIX), and the directory itself is flushed so that the
//! rename survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// 0600: secret keys and other private material.
    OwnerOnly,
    /// 0644: public documents (manifests, signatures, public keys, state).
    Public,
}

impl FileMode {
    fn bits(self) -> u32 {
        match self {
            FileMode::OwnerOnly => 0o600,
            FileMode::Public => 0o644,
        }
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn atomic_write(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    write_then_place(path, bytes, mode, |tmp| fs::rename(tmp, path))
}

/// Like [`atomic_write`], but never replaces an existing file: the complete,
/// flushed temp file is hard-linked into place, which fails with
/// `AlreadyExists` if `path` appeared at any moment before (no check-then-write
/// window for another writer to fall into).
pub fn atomic_write_new(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    write_then_place(path, bytes, mode, |tmp| {
        fs::hard_link(tmp, path)?;
        // The temp name is now a second name of the placed file; a stray
        // one left by a failure here is harmless.
        let _ = fs::remove_file(tmp);
        Ok(())
    })
}

/// Writes a flushed temp file beside `path`, puts it in place with `place`
/// and flushes the directory; the temp file is removed on failure.
fn write_then_place(
    path: &Path,
    bytes: &[u8],
    mode: FileMode,
    place: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path_beside(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode.bits()).open(&tmp)?;
        // The umask may have narrowed the mode further; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode.bits()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        place(&tmp)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Flushes a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A temporary path in the same directory as `path` (so a rename stays on one
/// file system), unique to this process and call.
pub fn temp_path_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadCappedError {
    #[error("{path} is {size} bytes, over the {max}-byte cap")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Reads a whole regular file, refusing it before reading if it is larger than
/// `max` bytes, and again if it grew past `max` while being read. Symlinks are
/// not followed: a deployed file replaced by a link is an attack, not content.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, ReadCappedError> {
    let io_err = |source| ReadCappedError::Io { path: path.to_path_buf(), source };
    let file = OpenOptions::new().read(true).custom_flags(libc_o_nofollow()).open(path).map_err(|e| {
        if e.raw_os_error() == Some(ELOOP) { ReadCappedError::NotAFile { path: path.to_path_buf() } } else { io_err(e) }
    })?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ReadCappedError::NotAFile { path: path.to_path_buf() });
    }
    if meta.len() > max {
        return Err(ReadCappedError::TooLarge { path: path.to_path_buf(), size: meta.len(), max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 > max {
        return Err(ReadCappedError::TooLarge { path: path.to_path_buf(), size: bytes.len() as u64, max });
    }
    Ok(bytes)
}

// O_NOFOLLOW and ELOOP on Linux; spelled out to avoid a libc dependency.
const O_NOFOLLOW: i32 = 0o400000;
const ELOOP: i32 = 40;
fn libc_o_nofollow() -> i32 {
    O_NOFOLLOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pub");
        atomic_write_new(&path, b"first", FileMode::Public).unwrap();
        let err = atomic_write_new(&path, b"second", FileMode::Public).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file is left behind");
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        atomic_write(&path, b"one", FileMode::Public).unwrap();
        atomic_write(&path, b"two", FileMode::OwnerOnly).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_capped_refuses_large_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![0u8; 100]).unwrap();
        assert!(matches!(read_capped(&path, 99), Err(ReadCappedError::TooLarge { size: 100, max: 99, .. })));
        assert_eq!(read_capped(&path, 100).unwrap().len(), 100);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(read_capped(&link, 1000), Err(ReadCappedError::NotAFile { .. })));
        assert!(matches!(read_capped(dir.path(), 1000), Err(ReadCappedError::NotAFile { .. })));
    }
}
