//! Putting verified bytes back, so that a crash at any instant leaves a
//! tenant path holding either the bundle that was there or the restored one,
//! never a mix of the two.
//!
//! 1. [`stage`] writes the complete verified bundle from the store into
//!    `DEPLOY/.guardian-restore-<tenant>.<random>`, a directory it creates
//!    exclusively under a name nobody can predict, every file and directory
//!    flushed. (Whoever writes the deploy directory could otherwise create the
//!    staging path first, unremovable, and block every rollback and restart.
//!    The runtime, like the guardian, ignores entries whose names start with
//!    `.`.)
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

use crate::store::{BundleFiles, Durability, make_dir, write_into};

/// Name prefix of staging directories in the deploy tree.
pub const STAGING_PREFIX: &str = ".guardian-restore-";

/// A fresh staging path for `tenant`: the prefix, the tenant and 64 random
/// bits (tenant names never contain a `.`).
fn fresh_staging_path(deploy: &Path, tenant: &str) -> PathBuf {
    let mut random = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    deploy.join(format!("{STAGING_PREFIX}{tenant}.{}", hex::encode(random)))
}

/// The tenant a staging entry name belongs to (also for the unsuffixed
/// names of earlier releases).
pub fn tenant_of_staging(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(STAGING_PREFIX)?;
    let tenant = rest.split_once('.').map_or(rest, |(tenant, _)| tenant);
    (!tenant.is_empty()).then_some(tenant)
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
/// The directory is created exclusively (`mkdir`, which fails on anything
/// already there) under a random name, retried on a collision, so nothing
/// anyone prepared in the deploy directory is ever reused or has to be
/// removed.
pub fn stage(deploy: &Path, tenant: &str, files: &BundleFiles) -> io::Result<PathBuf> {
    for _ in 0..16 {
        let staging = fresh_staging_path(deploy, tenant);
        match make_dir(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        // Flushed before the exchange: after it, these bytes are the tenant's.
        if let Err(e) = write_into(&staging, files, Durability::Immediate).and_then(|()| sync_dir(deploy)) {
            // What was written so far is this process's own, in a directory
            // nobody else knew the name of.
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        return Ok(staging);
    }
    Err(io::Error::other(format!("no free staging name for {tenant} in {} after 16 tries", deploy.display())))
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
        assert!(staging.file_name().unwrap().to_str().unwrap().starts_with(".guardian-restore-t."));
        let swapped = swap_in(deploy, "t", &staging).unwrap();
        assert_eq!(swapped, Swapped::Exchanged { evicted: staging.clone() });
        assert_eq!(fs::read(deploy.join("t/module.wasm")).unwrap(), b"good");
        assert!(!deploy.join("t/extra").exists());
        assert_eq!(fs::read(staging.join("module.wasm")).unwrap(), b"evil");
        assert_eq!(leftovers(deploy).unwrap(), vec![("t".to_string(), staging)]);
    }

    #[test]
    fn a_prepared_staging_path_is_neither_used_nor_in_the_way() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let deploy = dir.path();
        // What an attacker who writes the deploy directory prepares: the old
        // predictable name, unremovable for a non-root guardian.
        let trap = deploy.join(".guardian-restore-t");
        fs::create_dir(&trap).unwrap();
        fs::write(trap.join("planted"), b"x").unwrap();
        fs::set_permissions(&trap, fs::Permissions::from_mode(0o500)).unwrap();
        let first = stage(deploy, "t", &files(b"good")).unwrap();
        let second = stage(deploy, "t", &files(b"good")).unwrap();
        assert_ne!(first, second, "every staging name is fresh");
        assert_ne!(first, trap);
        assert_eq!(fs::read(first.join("module.wasm")).unwrap(), b"good");
        assert_eq!(fs::read(trap.join("planted")).unwrap(), b"x", "not touched");
        assert_eq!(tenant_of_staging(".guardian-restore-t"), Some("t"));
        assert_eq!(tenant_of_staging(".guardian-restore-t.0011223344556677"), Some("t"));
        assert_eq!(tenant_of_staging(".guardian-restore-"), None);
        assert_eq!(leftovers(deploy).unwrap().len(), 3);
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
