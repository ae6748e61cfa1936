//! Retention: the content-addressed store and the quarantine would grow
//! forever. `guardian gc` keeps, per tenant, the current verified version and
//! the newest earlier ones (`keep_versions` in all), and quarantine evidence
//! younger than `quarantine_days`; it removes the rest and records what it
//! removed (`gc.completed`).
//!
//! Order matters for a crash: the state is trimmed and written first, so it
//! never names a removed store entry; the current version is never removed,
//! so a rollback always has its source. Only entries whose names are ours
//! (64 hex digits in the store, a time-stamped name in the quarantine) are
//! touched; anything else is left for an operator, and links are removed,
//! never followed.
//!
//! Quarantined trees are whatever a deployer left in a tenant directory, so
//! removal is built for hostile shapes: it never recurses and never builds a
//! path deeper than two names below the root (a subdirectory is first moved
//! up beside the entry, keeping its time stamp, so a tree a million levels
//! deep is removed in constant stack and within `PATH_MAX`), and an entry
//! that cannot be removed is skipped and reported, never a reason to stop
//! the pass: one unremovable tree must not stop every later collection.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Verified versions kept per tenant, the current one included (at least 1).
    pub keep_versions: usize,
    /// Quarantine entries younger than this are kept.
    pub quarantine_max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep_versions: 3, quarantine_max_age: Duration::from_secs(90 * 86_400) }
    }
}

/// One removed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The store digest or the quarantine entry's name.
    pub name: String,
    pub bytes: u64,
}

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub keep_versions: usize,
    pub quarantine_max_age_days: u64,
    /// Earlier versions dropped from tenants' histories.
    pub versions_forgotten: usize,
    pub store_removed: Vec<Removed>,
    pub quarantine_removed: Vec<Removed>,
    /// Entries due for removal that could not be removed (left in place,
    /// retried at the next pass).
    pub skipped: Vec<Skipped>,
    pub bytes_freed: u64,
}

/// An entry that was due for removal but could not be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What one pruning of a directory did.
#[derive(Debug, Default)]
pub(crate) struct Pruned {
    pub removed: Vec<Removed>,
    pub skipped: Vec<Skipped>,
}

impl Pruned {
    /// Removes `root/name`; `piece_name` names the subdirectories moved up
    /// beside it (see [`remove_without_recursion`]).
    fn remove_entry(&mut self, root: &Path, name: String, piece_name: impl Fn() -> String) {
        match remove_without_recursion(root, &name, piece_name) {
            Ok(bytes) => self.removed.push(Removed { name, bytes }),
            Err(e) => {
                tracing::warn!(entry = %root.join(&name).display(), error = %e, "cannot remove; left for the next pass");
                self.skipped.push(Skipped { name, reason: e.to_string() });
            }
        }
    }
}

/// Removes every store entry (a directory named by 64 hex digits) not in
/// `referenced`.
/// Only failing to list `root` itself is an error.
pub(crate) fn prune_store(root: &Path, referenced: &BTreeSet<String>) -> io::Result<Pruned> {
    let mut pruned = Pruned::default();
    for name in entry_names(root)? {
        let ours = name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ours && !referenced.contains(&name) {
            // A piece is named like an unreferenced entry, so a pass cut
            // short by a crash leaves nothing the next one would not take.
            pruned.remove_entry(root, name, || hex::encode(random_bytes::<32>()));
        }
    }
    Ok(pruned)
}

/// Removes quarantine entries older than `max_age` at `now`, by the time
/// stamp their name starts with (`YYYYMMDDTHHMMSSZ-`, written by
/// [`crate::quarantine::Quarantine::take`]).
/// Only failing to list `root` itself is an error.
pub(crate) fn prune_quarantine(root: &Path, max_age: Duration, now: SystemTime) -> io::Result<Pruned> {
    let mut pruned = Pruned::default();
    let Some(cutoff) = now.checked_sub(max_age) else { return Ok(pruned) };
    for name in entry_names(root)? {
        if let Some(stamp) = name.get(..16)
            && quarantined_at(stamp).is_some_and(|taken| taken < cutoff)
        {
            // A piece keeps the entry's time stamp, so it is due as well.
            let stamp = stamp.to_string();
            pruned.remove_entry(root, name, || format!("{stamp}-gc-{}", hex::encode(random_bytes::<8>())));
        }
    }
    Ok(pruned)
}

/// The UTF-8 names in `root` (none of ours is anything else), sorted. An
/// entry that cannot be listed is skipped.
fn entry_names(root: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> =
        fs::read_dir(root)?.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect();
    names.sort_unstable();
    Ok(names)
}

fn quarantined_at(stamp: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(stamp, format).ok()?.assume_utc();
    Some(SystemTime::from(at))
}

/// Removes `root/name` (a link itself, never what it points to) and says
/// how many bytes of files that freed. A directory is emptied one level at a
/// time: its files are unlinked and each subdirectory is renamed up to
/// `root/<piece_name()>`, then emptied the same way, so no path is ever
/// deeper than `root/<entry>/<child>` and nothing recurses.
fn remove_without_recursion(root: &Path, name: &str, piece_name: impl Fn() -> String) -> io::Result<u64> {
    let mut freed = 0;
    let mut pending = vec![name.to_string()];
    while let Some(current) = pending.pop() {
        let path = root.join(&current);
        let meta = fs::symlink_metadata(&path)?;
        if !meta.is_dir() {
            fs::remove_file(&path)?;
            freed += meta.len();
            continue;
        }
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let child = entry.path();
            let child_meta = fs::symlink_metadata(&child)?;
            if child_meta.is_dir() {
                let moved_up = piece_name();
                fs::rename(&child, root.join(&moved_up))?;
                pending.push(moved_up);
            } else {
                fs::remove_file(&child)?;
                freed += child_meta.len();
            }
        }
        fs::remove_dir(&path)?;
    }
    Ok(freed)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_old_time_stamped_quarantine_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("20260101T000000Z-1-0-aa-alpha")).unwrap();
        fs::write(root.join("20260101T000000Z-1-0-aa-alpha/module.wasm"), b"12345").unwrap();
        fs::write(root.join("20261130T000000Z-1-1-bb-audit-log"), b"recent").unwrap();
        fs::write(root.join("operator-notes"), b"not ours").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("20250101T000000Z-1-2-cc-link")).unwrap();
        let now = SystemTime::from(time::macros::datetime!(2026-12-02 00:00 UTC));
        let removed = prune_quarantine(root, Duration::from_secs(30 * 86_400), now).unwrap().removed;
        let mut names: Vec<_> = removed.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["20250101T000000Z-1-2-cc-link", "20260101T000000Z-1-0-aa-alpha"]);
        assert_eq!(removed.iter().find(|r| r.name.ends_with("alpha")).unwrap().bytes, 5);
        assert!(root.join("20261130T000000Z-1-1-bb-audit-log").exists() && root.join("operator-notes").exists());
        assert!(Path::new("/etc/passwd").exists(), "a link is removed, never followed");
    }

    #[test]
    fn only_unreferenced_store_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let (keep, drop) = ("a".repeat(64), "b".repeat(64));
        for name in [&keep, &drop, &".tmp-leftover".to_string()] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        let removed = prune_store(dir.path(), &BTreeSet::from([keep.clone()])).unwrap().removed;
        assert_eq!(removed, [Removed { name: drop.clone(), bytes: 0 }]);
        assert!(dir.path().join(&keep).exists() && dir.path().join(".tmp-leftover").exists());
    }

    /// Builds `root/name` as a chain of `depth` directories named `d`, with
    /// a 3-byte file at the bottom, without ever using a deep path: the
    /// chain so far is moved into a fresh directory, level by level.
    fn deep_tree(root: &Path, name: &str, depth: usize) {
        fs::create_dir(root.join(name)).unwrap();
        fs::write(root.join(name).join("bottom"), b"abc").unwrap();
        for _ in 1..depth {
            fs::create_dir(root.join("level")).unwrap();
            fs::rename(root.join(name), root.join("level/d")).unwrap();
            fs::rename(root.join("level"), root.join(name)).unwrap();
        }
    }

    #[test]
    fn a_quarantined_tree_deeper_than_any_path_is_removed_without_recursion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // 30,000 levels: a path to the bottom is 60,000 bytes (PATH_MAX is
        // 4,096) and a recursive walk would need a frame per level.
        deep_tree(root, "20260101T000000Z-1-0-aa-deep", 30_000);
        fs::write(root.join("20260101T000000Z-1-1-bb-flat"), b"12345").unwrap();
        let now = SystemTime::from(time::macros::datetime!(2026-12-02 00:00 UTC));
        let pruned = prune_quarantine(root, Duration::from_secs(30 * 86_400), now).unwrap();
        assert_eq!(pruned.skipped, []);
        let removed: BTreeMap<_, _> = pruned.removed.iter().map(|r| (r.name.as_str(), r.bytes)).collect();
        assert_eq!(removed, BTreeMap::from([("20260101T000000Z-1-0-aa-deep", 3), ("20260101T000000Z-1-1-bb-flat", 5)]));
        assert_eq!(fs::read_dir(root).unwrap().count(), 0, "no piece is left behind");
    }

    /// Makes `file` impossible to unlink for this process: immutable when
    /// it runs as root (who ignores modes), else its directory read-only.
    /// Undone on drop so the temp dir can go.
    struct Unremovable(std::path::PathBuf, bool);

    impl Unremovable {
        fn new(file: &Path) -> Self {
            use std::os::unix::fs::MetadataExt;
            let as_root = fs::metadata(file).unwrap().uid() == 0;
            if as_root {
                let status = std::process::Command::new("chattr").arg("+i").arg(file).status().unwrap();
                assert!(status.success(), "chattr +i {} failed", file.display());
            } else {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(file.parent().unwrap(), fs::Permissions::from_mode(0o500)).unwrap();
            }
            Unremovable(file.to_path_buf(), as_root)
        }
    }

    impl Drop for Unremovable {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
            } else {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(self.0.parent().unwrap(), fs::Permissions::from_mode(0o700));
            }
        }
    }

    #[test]
    fn an_entry_that_cannot_be_removed_is_skipped_and_the_rest_still_go() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (stuck, after) = ("20260101T000000Z-1-0-aa-stuck", "20260101T000000Z-1-1-bb-after");
        fs::create_dir_all(root.join(stuck).join("inner")).unwrap();
        fs::write(root.join(stuck).join("inner/evidence"), b"x").unwrap();
        fs::write(root.join(after), b"12345").unwrap();
        let _guard = Unremovable::new(&root.join(stuck).join("inner/evidence"));
        let now = SystemTime::from(time::macros::datetime!(2026-12-02 00:00 UTC));
        let pruned = prune_quarantine(root, Duration::from_secs(30 * 86_400), now).unwrap();
        assert_eq!(
            pruned.removed,
            [Removed { name: after.into(), bytes: 5 }],
            "an entry after the stuck one still goes"
        );
        assert_eq!(pruned.skipped.len(), 1);
        assert_eq!(pruned.skipped[0].name, stuck);
        assert!(
            pruned.skipped[0].reason.contains("ermission denied") || pruned.skipped[0].reason.contains("not permitted"),
            "{}",
            pruned.skipped[0].reason
        );
        // What could not go stays where the next pass will find it due.
        let left: Vec<String> = entry_names(root).unwrap();
        assert!(left.iter().all(|n| n.starts_with("20260101T000000Z-")), "{left:?}");
    }
}
