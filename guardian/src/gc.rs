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
    pub bytes_freed: u64,
}

/// Removes every store entry (a directory named by 64 hex digits) not in
/// `referenced`.
pub(crate) fn prune_store(root: &Path, referenced: &BTreeSet<String>) -> io::Result<Vec<Removed>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let ours = name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ours || referenced.contains(&name) {
            continue;
        }
        removed.push(remove(&entry.path(), name)?);
    }
    Ok(removed)
}

/// Removes quarantine entries older than `max_age` at `now`, by the time
/// stamp their name starts with (`YYYYMMDDTHHMMSSZ-`, written by
/// [`crate::quarantine::Quarantine::take`]).
pub(crate) fn prune_quarantine(root: &Path, max_age: Duration, now: SystemTime) -> io::Result<Vec<Removed>> {
    let mut removed = Vec::new();
    let Some(cutoff) = now.checked_sub(max_age) else { return Ok(removed) };
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let Some(taken) = name.get(..16).and_then(quarantined_at) else { continue };
        if taken >= cutoff {
            continue;
        }
        removed.push(remove(&entry.path(), name)?);
    }
    Ok(removed)
}

fn quarantined_at(stamp: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(stamp, format).ok()?.assume_utc();
    Some(SystemTime::from(at))
}

/// Bytes under `path`, not following links.
fn size_of(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in fs::read_dir(path)? {
        total += size_of(&entry?.path())?;
    }
    Ok(total)
}

/// Removes `path` (a link itself, never what it points to) and says how
/// many bytes that freed.
fn remove(path: &Path, name: String) -> io::Result<Removed> {
    let bytes = size_of(path)?;
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)?
    } else {
        fs::remove_file(path)?
    }
    Ok(Removed { name, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let removed = prune_quarantine(root, Duration::from_secs(30 * 86_400), now).unwrap();
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
        let removed = prune_store(dir.path(), &BTreeSet::from([keep.clone()])).unwrap();
        assert_eq!(removed, [Removed { name: drop.clone(), bytes: 0 }]);
        assert!(dir.path().join(&keep).exists() && dir.path().join(".tmp-leftover").exists());
    }
}
