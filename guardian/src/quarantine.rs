//! Quarantine: refused files are moved out of the deploy tree into the state
//! directory and kept as evidence, never deleted and never executable.
//!
//! Each quarantined item gets its own directory entry
//! `STATE/quarantine/<UTC time>-<pid>-<n>-<label>`. A move is a rename when
//! the deploy tree and the state directory share a file system, and
//! otherwise a copy (links copied as links, never followed) followed by
//! removal of the original. Afterwards every file is made read-only for its
//! owner (0400) and every directory 0700, so nothing in quarantine can be
//! executed or changed by accident.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::RenameFlags;
use signer::fsutil::{FileMode, atomic_write_new, copy_new, sync_dir};

/// Why something could not be quarantined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuarantineError {
    #[error("cannot quarantine {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The quarantine directory.
#[derive(Debug, Clone)]
pub struct Quarantine {
    root: PathBuf,
}

impl Quarantine {
    pub fn open(root: &Path) -> Result<Self, QuarantineError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| QuarantineError::Io { path: root.to_path_buf(), source })?;
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Moves `source` (whatever it is; links are moved, not followed) into
    /// quarantine and returns where it went. `label` names the entry, e.g.
    /// the tenant; characters outside `[A-Za-z0-9._-]` become `_`.
    pub fn take(&self, source: &Path, label: &str) -> Result<PathBuf, QuarantineError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label: String = label
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
            .collect();
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| QuarantineError::Io { path, source }
        };
        // A fresh, unpredictable name, placed with RENAME_NOREPLACE: a plain
        // rename would silently replace an empty directory someone prepared
        // under a name they could guess.
        let mut placed = None;
        for _ in 0..16 {
            let mut random = [0u8; 4];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
            let dest = self.root.join(format!(
                "{}-{}-{n}-{}-{label}",
                signer::manifest::format_compact_utc(time::OffsetDateTime::now_utc()),
                std::process::id(),
                hex::encode(random)
            ));
            match rustix::fs::renameat_with(rustix::fs::CWD, source, rustix::fs::CWD, &dest, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    placed = Some(dest);
                    break;
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(rustix::io::Errno::XDEV) => {
                    // Another file system: copy (creating every entry
                    // exclusively), then remove the original.
                    copy_tree(source, &dest).map_err(err(source))?;
                    remove_any(source).map_err(err(source))?;
                    placed = Some(dest);
                    break;
                }
                Err(e) => return Err(err(source)(e.into())),
            }
        }
        let Some(dest) = placed else {
            return Err(err(&self.root)(io::Error::other("no free quarantine name after 16 tries")));
        };
        defang(&dest).map_err(err(&dest))?;
        sync_dir(&self.root).map_err(err(&self.root))?;
        if let Some(parent) = source.parent() {
            // The removal from the deploy tree must be as durable as the arrival here.
            let _ = sync_dir(parent);
        }
        Ok(dest)
    }
}

fn copy_tree(source: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(source)?;
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(source)?, dest)
    } else if file_type.is_dir() {
        DirBuilder::new().mode(0o700).create(dest)?;
        for entry in fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        sync_dir(dest)
    } else if file_type.is_file() {
        copy_new(source, dest, FileMode::OwnerOnly)
    } else {
        // A FIFO or device is evidence only by its name: record that it was there.
        let note = format!("special file of mode {:o}\n", std::os::unix::fs::MetadataExt::mode(&meta));
        atomic_write_new(dest, note.as_bytes(), FileMode::OwnerOnly)
    }
}

fn remove_any(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
}

/// Strips execute and write bits below `path`, without following links.
fn defang(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(path)? {
            defang(&entry?.path())?;
        }
        Ok(())
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(0o400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_trees_and_links_and_strips_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(&dir.path().join("q")).unwrap();
        let bad = dir.path().join("bad");
        fs::create_dir_all(bad.join("signatures")).unwrap();
        fs::write(bad.join("module.wasm"), b"evil").unwrap();
        fs::set_permissions(bad.join("module.wasm"), fs::Permissions::from_mode(0o777)).unwrap();
        let kept = q.take(&bad, "alpha/..").unwrap();
        assert!(!bad.exists());
        assert!(kept.file_name().unwrap().to_string_lossy().ends_with("-alpha_.."));
        assert_eq!(fs::read(kept.join("module.wasm")).unwrap(), b"evil");
        assert_eq!(fs::metadata(kept.join("module.wasm")).unwrap().permissions().mode() & 0o777, 0o400);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let kept = q.take(&link, "l").unwrap();
        assert_eq!(fs::read_link(kept).unwrap(), Path::new("/etc/passwd"));
    }

    #[test]
    fn copy_tree_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"1").unwrap();
        std::os::unix::fs::symlink("f", src.join("l")).unwrap();
        copy_tree(&src, &dir.path().join("dst")).unwrap();
        assert_eq!(fs::read_link(dir.path().join("dst/l")).unwrap(), Path::new("f"));
        assert_eq!(fs::read(dir.path().join("dst/f")).unwrap(), b"1");
    }

    #[test]
    fn every_entry_gets_a_fresh_name_and_nothing_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(&dir.path().join("q")).unwrap();
        let mut kept = Vec::new();
        for i in 0..3 {
            let src = dir.path().join(format!("src{i}"));
            fs::write(&src, format!("evidence {i}")).unwrap();
            kept.push(q.take(&src, "alpha").unwrap());
        }
        kept.sort();
        kept.dedup();
        assert_eq!(kept.len(), 3, "three distinct entries");
        for path in &kept {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(name.ends_with("-alpha"), "{name}");
            // time-pid-counter-random-label: 8 hex digits of randomness.
            let random = name.rsplit('-').nth(1).unwrap();
            assert!(random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        }
    }
}
