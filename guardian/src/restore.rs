//! Putting verified bytes back, so that a crash at any instant leaves a
//! tenant path holding either the bundle that was there or the restored one,
//! never a mix of the two.
//!
//! 1. [`stage`] writes the complete verified bundle from the store into
//!    `DEPLOY/.guardian-restore-<tenant>`, every file and directory flushed.
//!    (The runtime, like the guardian, ignores entries whose names start
//!    with `.`.)
//! 2. [`swap_in`] exchanges the staging directory with `DEPLOY/<tenant>` in
//!    one `renameat2(RENAME_EXCHANGE)`, or, when nothing is at the tenant
//!    path, renames it there with `RENAME_NOREPLACE`; then flushes `DEPLOY`.
//! 3. The caller moves what is now at the staging path (the refused bundle)
//!    into quarantine.
//!
//! A crash before step 2 leaves the refused bundle in place and a staging
//! directory; a crash after it leaves the restored bundle in place and the
//! refused one at the staging path. Either way, on the next start
//! [`leftovers`] finds the staging entry, it is quarantined, and the normal
//! scan then sees the tenant as clean or rolls it back again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags, renameat_with};
use signer::fsutil::sync_dir;

use crate::store::{BundleFiles, Durability, write_tree};

/// Name prefix of staging directories in the deploy tree.
pub const STAGING_PREFIX: &str = ".guardian-restore-";

pub fn staging_path(deploy: &Path, tenant: &str) -> PathBuf {
    deploy.join(format!("{STAGING_PREFIX}{tenant}"))
}

/// The tenant a staging entry name belongs to.
pub fn tenant_of_staging(name: &str) -> Option<&str> {
    name.strip_prefix(STAGING_PREFIX).filter(|t| !t.is_empty())
}

/// Staging entries left in `deploy` by an interrupted rollback.
pub fn leftovers(deploy: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(deploy)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(tenant) = tenant_of_staging(&name) {
            found.push((tenant.to_string(), entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `files` into a fresh staging directory for `tenant` and returns it.
/// A staging entry that is already there is removed first: leftovers of a
/// crash are quarantined at start-up, so one found here is this process's own.
pub fn stage(deploy: &Path, tenant: &str, files: &BundleFiles) -> io::Result<PathBuf> {
    let staging = staging_path(deploy, tenant);
    match fs::symlink_metadata(&staging) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&staging)?,
        Ok(_) => fs::remove_file(&staging)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Flushed before the exchange: after it, these bytes are the tenant's.
    write_tree(&staging, files, Durability::Immediate)?;
    sync_dir(deploy)?;
    Ok(staging)
}

/// What [`swap_in`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// The tenant path held something, which is now at this path.
    Exchanged { evicted: PathBuf },
    /// The tenant path was empty.
    Placed,
}

/// Atomically puts `staging` at `DEPLOY/<tenant>`.
pub fn swap_in(deploy: &Path, tenant: &str, staging: &Path) -> io::Result<Swapped> {
    let target = deploy.join(tenant);
    // Two tries: the tenant path may appear or vanish between them.
    for _ in 0..2 {
        match renameat_with(CWD, staging, CWD, &target, RenameFlags::EXCHANGE) {
            Ok(()) => {
                sync_dir(deploy)?;
                return Ok(Swapped::Exchanged { evicted: staging.to_path_buf() });
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match renameat_with(CWD, staging, CWD, &target, RenameFlags::NOREPLACE) {
            Ok(()) => {
                sync_dir(deploy)?;
                return Ok(Swapped::Placed);
            }
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!("{} kept appearing and vanishing during the swap", target.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn files(module: &[u8]) -> BundleFiles {
        let mut map = BTreeMap::new();
        map.insert("module.wasm".to_string(), module.to_vec());
        map.insert("manifest.json".to_string(), b"{}".to_vec());
        BundleFiles::new(map).unwrap()
    }

    #[test]
    fn exchange_replaces_a_tampered_bundle_whole() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path();
        fs::create_dir(deploy.join("t")).unwrap();
        fs::write(deploy.join("t/module.wasm"), b"evil").unwrap();
        fs::write(deploy.join("t/extra"), b"x").unwrap();
        let staging = stage(deploy, "t", &files(b"good")).unwrap();
        let swapped = swap_in(deploy, "t", &staging).unwrap();
        assert_eq!(swapped, Swapped::Exchanged { evicted: staging.clone() });
        assert_eq!(fs::read(deploy.join("t/module.wasm")).unwrap(), b"good");
        assert!(!deploy.join("t/extra").exists());
        assert_eq!(fs::read(staging.join("module.wasm")).unwrap(), b"evil");
        assert_eq!(leftovers(deploy).unwrap(), vec![("t".to_string(), staging)]);
    }

    #[test]
    fn missing_bundle_is_placed_and_a_symlink_is_exchanged_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path();
        let staging = stage(deploy, "t", &files(b"good")).unwrap();
        assert_eq!(swap_in(deploy, "t", &staging).unwrap(), Swapped::Placed);
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("module.wasm"), b"other").unwrap();
        fs::rename(deploy.join("t"), deploy.join("old")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, deploy.join("t")).unwrap();
        let staging = stage(deploy, "t", &files(b"good")).unwrap();
        swap_in(deploy, "t", &staging).unwrap();
        assert!(fs::symlink_metadata(deploy.join("t")).unwrap().is_dir());
        assert!(fs::symlink_metadata(&staging).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(elsewhere.join("module.wasm")).unwrap(), b"other");
    }
}
