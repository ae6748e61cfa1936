//! Fixtures for the library's own tests: keys, a trust store, signed bundles
//! and a deploy tree in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

use signer::bundle::{write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{PublicKey, SecretKey};
use signer::trust::write_trust_store;

pub const FUTURE: &str = "2999-01-01T00:00:00Z";

/// A small valid module whose custom section makes each version's bytes unique.
pub fn module(tenant: &str, version: u64) -> Vec<u8> {
    let payload = format!("{tenant} v{version}");
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    bytes.push((payload.len() + 2) as u8);
    bytes.push(1);
    bytes.push(b'n');
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

pub struct Kit {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub keys: Vec<SecretKey>,
}

impl Kit {
    /// Three maintainer keys, all trusted, with `trust_toml`.
    pub fn new(trust_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
        let kit = Self { _dir: dir, root, keys };
        kit.set_trust(trust_toml);
        fs::create_dir_all(kit.deploy()).unwrap();
        kit
    }

    pub fn set_trust(&self, trust_toml: &str) {
        let pubs: Vec<PublicKey> = self.keys.iter().map(SecretKey::public_key).collect();
        let names: Vec<String> = (0..pubs.len()).map(|i| format!("k{i}")).collect();
        let named: Vec<(&str, &PublicKey)> = names.iter().map(String::as_str).zip(pubs.iter()).collect();
        write_trust_store(&self.trust(), &named, trust_toml).unwrap();
    }

    pub fn trust(&self) -> PathBuf {
        self.root.join("trust")
    }

    pub fn deploy(&self) -> PathBuf {
        self.root.join("deploy")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Writes a bundle of `tenant` at `out`, signed by `signers`.
    pub fn bundle_at(&self, out: &Path, tenant: &str, version: u64, signers: &[usize]) {
        let module = module(tenant, version);
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: tenant.into(),
            version,
            version_label: format!("{version}.0.0"),
            module: ModuleDigest::of(&module),
            expires: FUTURE.into(),
            provenance: Provenance::default(),
            capabilities: Capabilities::default(),
        };
        write_unsigned(out, &module, &manifest).unwrap();
        let bytes = fs::read(out.join("manifest.json")).unwrap();
        for &k in signers {
            write_signature(out, &self.keys[k].sign(&bytes, "file:manifest.json").unwrap()).unwrap();
        }
    }

    pub fn deploy_bundle(&self, tenant: &str, version: u64, signers: &[usize]) -> PathBuf {
        let path = self.deploy().join(tenant);
        self.bundle_at(&path, tenant, version, signers);
        path
    }

    /// Replaces the deployed bundle of `tenant` with a new one, whole.
    pub fn replace_bundle(&self, tenant: &str, version: u64, signers: &[usize]) {
        let staged = self.root.join(format!("staged-{tenant}-{version}"));
        let _ = fs::remove_dir_all(&staged);
        self.bundle_at(&staged, tenant, version, signers);
        let _ = fs::remove_dir_all(self.deploy().join(tenant));
        fs::rename(&staged, self.deploy().join(tenant)).unwrap();
    }
}
