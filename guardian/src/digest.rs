//! The hashes the guardian computes itself, each under its own
//! domain-separation tag so that no guardian digest can be confused with a
//! manifest hash, an audit entry hash or a Merkle node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tag of [`bundle_digest`]: the name of a store entry.
pub const BUNDLE_DIGEST_DOMAIN: &[u8] = b"nightcore-guardian-bundle-v1\0";
/// Tag of the state file's own hash.
pub const STATE_DIGEST_DOMAIN: &[u8] = b"nightcore-guardian-state-v1\0";

/// Hash and size of one file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub size: u64,
}

impl FileRecord {
    pub fn of(bytes: &[u8]) -> Self {
        Self { sha256: sha256_hex(bytes), size: bytes.len() as u64 }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest that names a bundle version in the store: SHA-256 over the tag
/// and, for every file in path order, the length-prefixed relative path, the
/// size and the file's own SHA-256.
///
/// It covers the signature files as well as the manifest, so two deployments
/// of one manifest with different signature sets are different versions: a
/// signature added, removed or swapped is drift like any other byte.
pub fn bundle_digest(files: &BTreeMap<String, FileRecord>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(BUNDLE_DIGEST_DOMAIN);
    for (path, record) in files {
        hasher.update((path.len() as u64).to_be_bytes());
        hasher.update(path.as_bytes());
        hasher.update(record.size.to_be_bytes());
        hasher.update(record.sha256.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_paths_and_contents() {
        let mut a = BTreeMap::new();
        a.insert("module.wasm".to_string(), FileRecord::of(b"m"));
        a.insert("manifest.json".to_string(), FileRecord::of(b"j"));
        let mut b = a.clone();
        b.insert("signatures/x.minisig".to_string(), FileRecord::of(b"s"));
        let mut c = a.clone();
        c.insert("module.wasm".to_string(), FileRecord::of(b"n"));
        let (da, db, dc) = (bundle_digest(&a), bundle_digest(&b), bundle_digest(&c));
        assert_ne!(da, db);
        assert_ne!(da, dc);
        assert_eq!(da, bundle_digest(&a.clone()));
        assert_eq!(da.len(), 64);
    }

    #[test]
    fn path_boundaries_are_unambiguous() {
        let mut a = BTreeMap::new();
        a.insert("ab".to_string(), FileRecord { sha256: "c".into(), size: 1 });
        let mut b = BTreeMap::new();
        b.insert("a".to_string(), FileRecord { sha256: "bc".into(), size: 1 });
        assert_ne!(bundle_digest(&a), bundle_digest(&b));
    }
}
