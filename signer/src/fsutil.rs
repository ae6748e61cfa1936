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
///
/// A rename replaces whatever has the name, and as root that includes a
/// device (`/dev/null` would become a regular file) or a FIFO: so an existing
/// `path` that is not a regular file (a symlink included) is refused with
/// [`io::ErrorKind::InvalidInput`] and left as it is. For a path a user named
/// on the command line, which may well be `/dev/stdout`, use [`write_output`].
pub fn atomic_write(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    refuse_non_regular_destination(path)?;
    write_then_place(path, mode, Durability::Full, |file| file.write_all(bytes), |tmp| fs::rename(tmp, path))
}

/// As [`atomic_write`], but the directory is not flushed after the rename,
/// which saves an fsync: after a crash `path` holds the old contents or the
/// new, each complete (the new file's data is flushed before the rename).
/// Only for files where getting the previous version back is safe, such as
/// the audit checkpoint.
pub fn atomic_write_unflushed_rename(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    refuse_non_regular_destination(path)?;
    write_then_place(path, mode, Durability::FileOnly, |file| file.write_all(bytes), |tmp| fs::rename(tmp, path))
}

/// How much of a write is flushed before it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// The file's data, then its directory after the rename or link.
    Full,
    /// The file's data only.
    FileOnly,
}

/// Writes a file the user named (`--html`, `--receipt`): a regular
/// file or a new name is replaced atomically as by [`atomic_write`]; anything
/// else (a device, a FIFO, a symlink such as `/dev/stdout`) is written
/// through, never renamed over. Nothing is created through a dangling link.
pub fn write_output(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => {
            if meta.is_dir() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is a directory", path.display())));
            }
            let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
            file.write_all(bytes)?;
            file.flush()
        }
        _ => atomic_write(path, bytes, mode),
    }
}

/// Refuses (without touching it) an existing `path` that is not a regular file.
fn refuse_non_regular_destination(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} exists and is not a regular file ({}); refusing to replace it", path.display(), kind_of(&meta)),
        )),
        _ => Ok(()),
    }
}

/// What kind of file system object `meta` describes, for error messages.
pub fn kind_of(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// Creates `dir` (and its parents) if missing, then checks that it is a
/// directory of its own (not a symlink), owned by the effective user and not
/// writable by group or others: a directory whose contents we execute or
/// trust (the compile cache and where it keeps rejected entries) must not be
/// fillable by anyone else. A directory created here gets mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivateDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let io_err = |source| PrivateDirError::Io { path: dir.to_path_buf(), source };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err)?;
            }
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // Another process made it first: check what it made.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(e) => return Err(io_err(e)),
        Ok(_) => {}
    }
    let meta = fs::symlink_metadata(dir).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(PrivateDirError::NotADirectory { path: dir.to_path_buf(), kind: kind_of(&meta) });
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(PrivateDirError::WrongOwner { path: dir.to_path_buf(), owner: meta.uid(), euid });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PrivateDirError::Writable { path: dir.to_path_buf(), mode });
    }
    Ok(())
}

/// Why a directory is not private to this user; see [`ensure_private_dir`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateDirError {
    #[error("{path} is {kind}, not a directory")]
    NotADirectory { path: PathBuf, kind: &'static str },
    #[error("{path} is owned by uid {owner}, not by this user (uid {euid}): someone else could fill it")]
    WrongOwner { path: PathBuf, owner: u32, euid: u32 },
    #[error("{path} has mode {mode:04o}: group or others may write to it; make it 0700 (chmod go-w)")]
    Writable { path: PathBuf, mode: u32 },
    #[error("cannot prepare directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Like [`atomic_write`], but never replaces an existing file: the complete,
/// flushed temp file is hard-linked into place, which fails with
/// `AlreadyExists` if `path` appeared at any moment before (no check-then-write
/// window for another writer to fall into).
pub fn atomic_write_new(path: &Path, bytes: &[u8], mode: FileMode) -> io::Result<()> {
    write_then_place(path, mode, Durability::Full, |file| file.write_all(bytes), |tmp| link_new(tmp, path))
}

/// Copies the regular file `source` to the new name `dest`, as
/// [`atomic_write_new`] writes: `source` is opened as [`open_regular`] opens
/// (no symlink followed, a FIFO or device swapped in after a check refused
/// rather than waited on or read without end) and streamed, so its size does
/// not matter; `dest` never replaces anything.
pub fn copy_new(source: &Path, dest: &Path, mode: FileMode) -> io::Result<()> {
    let (mut from, _) = open_regular(source).map_err(|e| match e {
        ReadCappedError::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    })?;
    write_then_place(
        dest,
        mode,
        Durability::Full,
        |file| io::copy(&mut from, file).map(drop),
        |tmp| link_new(tmp, dest),
    )
}

/// Puts the complete temp file `tmp` at `path` unless `path` exists.
fn link_new(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::hard_link(tmp, path)?;
    // The temp name is now a second name of the placed file; a stray one
    // left by a failure here is harmless.
    let _ = fs::remove_file(tmp);
    Ok(())
}

/// Writes a temp file beside `path` with `fill`, puts it in place with
/// `place`, flushing as `durability` says; the temp file is removed on
/// failure.
fn write_then_place(
    path: &Path,
    mode: FileMode,
    durability: Durability,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    place: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let tmp = temp_path_beside(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode.bits()).open(&tmp)?;
        // The umask may have narrowed the mode further; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode.bits()))?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        place(&tmp)?;
        match durability {
            Durability::Full => sync_dir(&dir),
            Durability::FileOnly => Ok(()),
        }
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
/// file system), unique to this process and call, and unpredictable: in a
/// directory others may write (the audit log's), a name they could guess is
/// one they could create first, failing every write that needs it.
pub fn temp_path_beside(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}-{n}-{random:016x}", std::process::id()))
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
/// See [`open_regular`] for why a FIFO or a device never blocks or floods us.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, ReadCappedError> {
    let io_err = |source| ReadCappedError::Io { path: path.to_path_buf(), source };
    let (file, meta) = open_regular(path)?;
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

/// Opens `path` for reading only if it is a regular file, itself and not
/// through a symlink, and returns it with its metadata (from `fstat` of the
/// opened file, so there is no window between check and use).
///
/// The open is non-blocking: opening a FIFO for reading otherwise waits for a
/// writer forever, and a device such as `/dev/zero` would be read without end.
/// Both are refused as [`ReadCappedError::NotAFile`] within the open. Reads
/// from a regular file are unaffected by `O_NONBLOCK`.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata), ReadCappedError> {
    use rustix::fs::OFlags;
    let not_a_file = || ReadCappedError::NotAFile { path: path.to_path_buf() };
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let file = OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            not_a_file()
        } else {
            ReadCappedError::Io { path: path.to_path_buf(), source: e }
        }
    })?;
    let meta = file.metadata().map_err(|source| ReadCappedError::Io { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn temp_names_cannot_be_taken_first() {
        // Whoever can write the directory creates every name the old scheme
        // (pid and a counter) would pick next: the write still goes through.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log.checkpoint");
        for n in 0..2000 {
            fs::write(dir.path().join(format!(".audit.log.checkpoint.tmp-{}-{n}", std::process::id())), b"x").unwrap();
        }
        atomic_write(&path, b"new", FileMode::Public).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let (a, b) = (temp_path_beside(&path), temp_path_beside(&path));
        assert_ne!(a, b);
    }

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
        let before = fs::metadata(&path).unwrap().ino();
        atomic_write(&path, b"two", FileMode::OwnerOnly).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A new file renamed over the old one, not the old one rewritten in place.
        assert_ne!(fs::metadata(&path).unwrap().ino(), before);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn copy_new_copies_regular_files_only_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, b"evidence").unwrap();
        let dest = dir.path().join("dest");
        copy_new(&source, &dest, FileMode::OwnerOnly).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"evidence");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        // An existing destination is neither replaced nor written through.
        fs::write(&source, b"other").unwrap();
        let err = copy_new(&source, &dest, FileMode::OwnerOnly).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&dest).unwrap(), b"evidence");
        // A source swapped for a link or a FIFO is refused, not followed or waited on.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&source, &link).unwrap();
        make_node(&["mkfifo", dir.path().join("fifo").to_str().unwrap()]);
        for refused in [link, dir.path().join("fifo")] {
            let err = copy_new(&refused, &dir.path().join("out"), FileMode::OwnerOnly).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{}: {err}", refused.display());
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        // Nothing but the files made here is left: no temp file, no "out".
        let mut names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["dest", "fifo", "link", "source"]);
    }

    #[test]
    fn a_concurrent_reader_sees_the_old_file_or_the_new_never_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Large enough that an in-place write is seen half done.
        let versions = [vec![b'a'; 1 << 20], vec![b'b'; 1 << 20]];
        atomic_write(&path, &versions[0], FileMode::Public).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let reads = std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0u32;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let seen = fs::read(&path).unwrap();
                    assert!(versions.contains(&seen), "a reader saw {} bytes of a write in progress", seen.len());
                    reads += 1;
                }
                reads
            });
            for round in 0..200 {
                atomic_write(&path, &versions[round % 2], FileMode::Public).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(reads > 0, "the reader never ran");
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

    fn make_node(args: &[&str]) {
        let status = std::process::Command::new(args[0]).args(&args[1..]).status().unwrap();
        assert!(status.success(), "{args:?}");
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_at_once_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_node(&["mkfifo", fifo.to_str().unwrap()]);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let started = std::time::Instant::now();
        assert!(matches!(read_capped(&fifo, 1000), Err(ReadCappedError::NotAFile { .. })));
        let zero = dir.path().join("zero");
        make_node(&["mknod", zero.to_str().unwrap(), "c", "1", "5"]);
        assert!(matches!(read_capped(&zero, 1000), Err(ReadCappedError::NotAFile { .. })));
        // /dev/zero behind a symlink is refused as the link it is.
        let link = dir.path().join("checkpoint");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(read_capped(&link, 1000), Err(ReadCappedError::NotAFile { .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn atomic_write_never_renames_over_a_device_fifo_or_link() {
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("null");
        make_node(&["mknod", null.to_str().unwrap(), "c", "1", "3"]);
        let fifo = dir.path().join("fifo");
        make_node(&["mkfifo", fifo.to_str().unwrap()]);
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        use std::os::unix::fs::FileTypeExt;
        for path in [&null, &fifo, &link] {
            for write in [atomic_write, atomic_write_unflushed_rename] {
                let err = write(path, b"x", FileMode::Public).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
                assert!(err.to_string().contains("is not a regular file"), "{err}");
            }
        }
        assert!(fs::symlink_metadata(&null).unwrap().file_type().is_char_device());
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4, "no temp file is left behind");
    }

    #[test]
    fn write_output_writes_through_devices_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("null");
        make_node(&["mknod", null.to_str().unwrap(), "c", "1", "3"]);
        write_output(&null, b"report", FileMode::Public).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&null).unwrap().file_type().is_char_device(), "still the device");
        // A link (like /dev/stdout) is written through, and stays a link.
        let target = dir.path().join("target");
        fs::write(&target, b"old contents, longer").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_output(&link, b"new", FileMode::Public).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // Nothing is created through a dangling link.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(write_output(&dangling, b"x", FileMode::Public).is_err());
        assert!(!dir.path().join("nowhere").exists());
        // A regular file is replaced atomically.
        let plain = dir.path().join("plain");
        write_output(&plain, b"one", FileMode::Public).unwrap();
        write_output(&plain, b"two", FileMode::Public).unwrap();
        assert_eq!(fs::read(&plain).unwrap(), b"two");
    }

    #[test]
    fn a_private_dir_must_be_ours_and_not_writable_by_others() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/cache");
        ensure_private_dir(&cache).unwrap();
        assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(ensure_private_dir(&cache), Err(PrivateDirError::Writable { mode: 0o777, .. })));
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o750)).unwrap();
        ensure_private_dir(&cache).unwrap();
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(12345), None).unwrap();
        assert!(matches!(ensure_private_dir(&other), Err(PrivateDirError::WrongOwner { owner: 12345, .. })));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        assert!(matches!(ensure_private_dir(&link), Err(PrivateDirError::NotADirectory { kind: "a symlink", .. })));
        assert_eq!(fs::metadata(&other).unwrap().uid(), 12345);
    }
}
