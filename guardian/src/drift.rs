//! Drift: every way what is deployed can differ from the last verified
//! version of a tenant, named so that an operator knows what happened.
//!
//! Drift is anything that changes what would run or who could change it: the
//! bytes of a bundle file, a file deleted or added, a link or a non-file where
//! a file or the bundle directory belongs, and permissions that let group or
//! others write a deployed file or directory.

use std::collections::BTreeMap;

use serde::Serialize;
use signer::bundle::SIGNATURES_DIR;

use crate::digest::FileRecord;
use crate::snapshot::{EntryKind, TenantSnapshot};

/// What kind of change was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DriftKind {
    /// The tenant directory is gone.
    BundleDeleted,
    /// A file's bytes differ from the verified ones.
    ContentChanged,
    /// A file or directory that is not part of the verified bundle.
    FileAdded,
    /// A verified file is gone.
    FileDeleted,
    /// A special file or a plain file where a directory or file belongs.
    NotADirectory,
    /// A file or directory that group or others may write.
    Permissions,
    /// A symbolic link where a file or the bundle directory belongs.
    Symlink,
    /// A tenant directory the guardian has no verified version of.
    TenantAdded,
    /// The tenant directory has more entries than are listed.
    TooManyEntries,
}

impl DriftKind {
    pub fn code(self) -> &'static str {
        match self {
            DriftKind::BundleDeleted => "bundle_deleted",
            DriftKind::ContentChanged => "content_changed",
            DriftKind::FileAdded => "file_added",
            DriftKind::FileDeleted => "file_deleted",
            DriftKind::NotADirectory => "not_a_directory",
            DriftKind::Permissions => "permissions",
            DriftKind::Symlink => "symlink",
            DriftKind::TenantAdded => "tenant_added",
            DriftKind::TooManyEntries => "too_many_entries",
        }
    }
}

/// One difference. Paths are relative to the deploy directory
/// (`alpha/module.wasm`); `expected` and `found` are SHA-256 hex of files,
/// the bundle digest for a whole tenant, or a word (`symlink`, `directory`,
/// `mode 0664`) where no hash applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftItem {
    pub kind: DriftKind,
    pub path: String,
    pub expected: Option<String>,
    pub found: Option<String>,
}

/// The verified layout a snapshot is compared with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub digest: &'a str,
    pub files: &'a BTreeMap<String, FileRecord>,
}

/// Every difference between `snapshot` of `tenant` and what was verified.
/// With nothing verified, any content at all is a [`DriftKind::TenantAdded`].
pub fn compare(tenant: &str, expected: Option<Expected<'_>>, snapshot: &TenantSnapshot) -> Vec<DriftItem> {
    let item =
        |kind, path: String, expected: Option<String>, found: Option<String>| DriftItem { kind, path, expected, found };
    let (mode, entries, truncated) = match snapshot {
        TenantSnapshot::Missing => {
            return expected
                .map(|e| vec![item(DriftKind::BundleDeleted, tenant.to_string(), Some(e.digest.to_string()), None)])
                .unwrap_or_default();
        }
        TenantSnapshot::NotADirectory { kind } => {
            let drift = if *kind == EntryKind::Symlink { DriftKind::Symlink } else { DriftKind::NotADirectory };
            let drift = if expected.is_none() { DriftKind::TenantAdded } else { drift };
            return vec![item(
                drift,
                tenant.to_string(),
                expected.map(|e| e.digest.to_string()),
                Some(kind.label().to_string()),
            )];
        }
        TenantSnapshot::Directory { mode, entries, truncated } => (*mode, entries, *truncated),
    };
    let Some(expected) = expected else {
        return vec![item(DriftKind::TenantAdded, tenant.to_string(), None, Some(snapshot.content_digest()))];
    };
    let mut items = Vec::new();
    if mode & crate::snapshot::GROUP_OTHER_WRITE != 0 {
        items.push(item(DriftKind::Permissions, tenant.to_string(), None, Some(format!("mode {mode:04o}"))));
    }
    if truncated {
        items.push(item(
            DriftKind::TooManyEntries,
            tenant.to_string(),
            None,
            Some(format!("over {} entries", crate::snapshot::MAX_ENTRIES_PER_TENANT)),
        ));
    }
    for (rel, record) in expected.files {
        let path = format!("{tenant}/{rel}");
        let want = Some(record.sha256.clone());
        match entries.get(rel) {
            None => items.push(item(DriftKind::FileDeleted, path, want, None)),
            Some(entry) => match (entry.kind, &entry.record) {
                (EntryKind::Symlink, _) => items.push(item(DriftKind::Symlink, path, want, Some("symlink".into()))),
                (EntryKind::File, Some(found)) if found.sha256 != record.sha256 || found.size != record.size => {
                    items.push(item(DriftKind::ContentChanged, path, want, Some(found.sha256.clone())));
                }
                (EntryKind::File, Some(_)) => {
                    if entry.is_writable_by_others() {
                        items.push(item(DriftKind::Permissions, path, None, Some(format!("mode {:04o}", entry.mode))));
                    }
                }
                (EntryKind::File, None) => {
                    let found = entry.problem.clone().unwrap_or_else(|| "unreadable".into());
                    items.push(item(DriftKind::ContentChanged, path, want, Some(found)));
                }
                (kind, _) => items.push(item(DriftKind::ContentChanged, path, want, Some(kind.label().into()))),
            },
        }
    }
    for (rel, entry) in entries {
        if expected.files.contains_key(rel) {
            continue;
        }
        let path = format!("{tenant}/{rel}");
        if rel == SIGNATURES_DIR && entry.kind == EntryKind::Directory {
            if entry.is_writable_by_others() {
                items.push(item(DriftKind::Permissions, path, None, Some(format!("mode {:04o}", entry.mode))));
            }
            continue;
        }
        let found = match (&entry.kind, &entry.record) {
            (EntryKind::File, Some(record)) => record.sha256.clone(),
            (kind, _) => kind.label().to_string(),
        };
        let kind = if entry.kind == EntryKind::Symlink { DriftKind::Symlink } else { DriftKind::FileAdded };
        items.push(item(kind, path, None, Some(found)));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use signer::bundle::ReadLimits;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn deployed(dir: &std::path::Path) -> BTreeMap<String, FileRecord> {
        fs::create_dir_all(dir.join("signatures")).unwrap();
        fs::write(dir.join("module.wasm"), b"m").unwrap();
        fs::write(dir.join("manifest.json"), b"j").unwrap();
        fs::write(dir.join("signatures/A.minisig"), b"s").unwrap();
        for p in ["", "signatures"] {
            fs::set_permissions(dir.join(p), fs::Permissions::from_mode(0o755)).unwrap();
        }
        TenantSnapshot::take(dir, &ReadLimits::default()).unwrap().content_records()
    }

    fn kinds(tenant_dir: &std::path::Path, files: &BTreeMap<String, FileRecord>) -> Vec<(DriftKind, String)> {
        let snap = TenantSnapshot::take(tenant_dir, &ReadLimits::default()).unwrap();
        let expected = Expected { digest: "d", files };
        compare("t", Some(expected), &snap).into_iter().map(|i| (i.kind, i.path)).collect()
    }

    #[test]
    fn clean_bundle_has_no_drift() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        let files = deployed(&t);
        assert_eq!(kinds(&t, &files), vec![]);
    }

    #[test]
    fn each_kind_of_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        let files = deployed(&t);
        fs::write(t.join("module.wasm"), b"M").unwrap();
        fs::remove_file(t.join("manifest.json")).unwrap();
        fs::remove_file(t.join("signatures/A.minisig")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.join("signatures/A.minisig")).unwrap();
        fs::write(t.join("extra.txt"), b"x").unwrap();
        fs::set_permissions(t.join("signatures"), fs::Permissions::from_mode(0o775)).unwrap();
        let found = kinds(&t, &files);
        assert!(found.contains(&(DriftKind::ContentChanged, "t/module.wasm".into())), "{found:?}");
        assert!(found.contains(&(DriftKind::FileDeleted, "t/manifest.json".into())), "{found:?}");
        assert!(found.contains(&(DriftKind::Symlink, "t/signatures/A.minisig".into())), "{found:?}");
        assert!(found.contains(&(DriftKind::FileAdded, "t/extra.txt".into())), "{found:?}");
        assert!(found.contains(&(DriftKind::Permissions, "t/signatures".into())), "{found:?}");
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn writable_file_is_a_permission_drift() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        let files = deployed(&t);
        fs::set_permissions(t.join("module.wasm"), fs::Permissions::from_mode(0o646)).unwrap();
        assert_eq!(kinds(&t, &files), vec![(DriftKind::Permissions, "t/module.wasm".to_string())]);
    }

    #[test]
    fn whole_bundle_changes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        let files = deployed(&t);
        let moved = dir.path().join("moved");
        fs::rename(&t, &moved).unwrap();
        assert_eq!(kinds(&t, &files), vec![(DriftKind::BundleDeleted, "t".to_string())]);
        std::os::unix::fs::symlink(&moved, &t).unwrap();
        assert_eq!(kinds(&t, &files), vec![(DriftKind::Symlink, "t".to_string())]);
        let snap = TenantSnapshot::take(&moved, &ReadLimits::default()).unwrap();
        assert_eq!(compare("n", None, &snap)[0].kind, DriftKind::TenantAdded);
    }
}
