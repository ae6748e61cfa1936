//! Every way a bundle can fail verification, each asserting its exact reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::fs;
use std::path::{Path, PathBuf};

use signer::bundle::{BundleBytes, ReadLimits, write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{PublicKey, SecretKey, SignatureError};
use signer::trust::{TrustStore, write_trust_store};
use signer::verify::{VerifyError, verify_bundle};

const MODULE: &[u8] = b"\0asm\x01\0\0\0";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: Vec<SecretKey>,
}

impl Fixture {
    /// Three maintainer keys; the trust store holds the first `trusted` of them.
    fn new(trusted: usize, trust_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
        let named: Vec<(String, &PublicKey)> =
            pubs.iter().take(trusted).enumerate().map(|(i, k)| (format!("k{i}"), k)).collect();
        let named: Vec<(&str, &PublicKey)> = named.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        write_trust_store(&root.join("trust"), &named, trust_toml).unwrap();
        Self { _dir: dir, root, keys }
    }

    fn trust(&self) -> TrustStore {
        TrustStore::load(&self.root.join("trust")).unwrap()
    }

    fn bundle(&self, name: &str, expires: &str) -> PathBuf {
        let path = self.root.join(name);
        write_unsigned(&path, MODULE, &manifest("hello", expires)).unwrap();
        path
    }

    fn sign(&self, bundle: &Path, key: usize) {
        let manifest = fs::read(bundle.join("manifest.json")).unwrap();
        write_signature(bundle, &self.keys[key].sign(&manifest, "file:manifest.json").unwrap()).unwrap();
    }

    fn verify(&self, bundle: &Path) -> Result<signer::verify::VerifiedBundle, VerifyError> {
        let bytes = BundleBytes::read(bundle, &ReadLimits::default()).unwrap();
        verify_bundle(bytes, &self.trust(), time::OffsetDateTime::now_utc())
    }
}

fn manifest(name: &str, expires: &str) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: name.into(),
        version: 3,
        version_label: "1.2.0".into(),
        module: ModuleDigest::of(MODULE),
        expires: expires.into(),
        provenance: Provenance::default(),
        capabilities: Capabilities::default(),
    }
}

const FUTURE: &str = "2999-01-01T00:00:00Z";

#[test]
fn two_of_three_verifies_and_reports_signers() {
    let f = Fixture::new(3, "threshold = 2\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    f.sign(&b, 2);
    let v = f.verify(&b).unwrap();
    let mut expected = vec![f.keys[0].key_id(), f.keys[2].key_id()];
    expected.sort();
    assert_eq!(v.signers(), expected);
    assert_eq!(v.module(), MODULE);
    assert_eq!(v.manifest().version, 3);
}

#[test]
fn unsigned_bundle_is_refused() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::Unsigned);
}

#[test]
fn signature_by_unknown_key_is_untrusted() {
    let f = Fixture::new(2, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 2);
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::UntrustedKey { key_id: f.keys[2].key_id() });
}

#[test]
fn tampered_manifest_is_a_bad_signature() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    let text = fs::read_to_string(b.join("manifest.json")).unwrap().replace("\"version\":3", "\"version\":9");
    fs::write(b.join("manifest.json"), text).unwrap();
    assert_eq!(
        f.verify(&b).unwrap_err(),
        VerifyError::BadSignature(SignatureError::Invalid { key_id: f.keys[0].key_id() })
    );
}

#[test]
fn tampered_module_byte_is_a_hash_mismatch() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    let mut module = MODULE.to_vec();
    module[7] ^= 1;
    let found = ModuleDigest::of(&module).sha256;
    fs::write(b.join("module.wasm"), module).unwrap();
    assert_eq!(
        f.verify(&b).unwrap_err(),
        VerifyError::HashMismatch { expected: ModuleDigest::of(MODULE).sha256, found }
    );
}

#[test]
fn module_of_other_size_is_a_size_mismatch_before_hashing() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    fs::write(b.join("module.wasm"), b"\0asm\x01\0\0\0\0").unwrap();
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::SizeMismatch { expected: 8, found: 9 });
}

#[test]
fn swapped_manifest_from_another_bundle_is_a_hash_mismatch() {
    // A validly signed manifest of another module, dropped next to this module.
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    let other = f.root.join("other");
    let mut m = manifest("hello", FUTURE);
    let other_module = b"\0asm\x01\0\0\x01";
    m.module = ModuleDigest::of(other_module);
    write_unsigned(&other, other_module, &m).unwrap();
    f.sign(&other, 0);
    fs::copy(other.join("manifest.json"), b.join("manifest.json")).unwrap();
    fs::create_dir_all(b.join("signatures")).unwrap();
    for e in fs::read_dir(other.join("signatures")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), b.join("signatures").join(e.file_name())).unwrap();
    }
    assert!(matches!(f.verify(&b).unwrap_err(), VerifyError::HashMismatch { .. }));
}

#[test]
fn one_of_two_is_threshold_not_met() {
    let f = Fixture::new(3, "threshold = 2\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 1);
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::ThresholdNotMet { required: 2, valid: 1 });
}

#[test]
fn the_same_signature_copied_twice_counts_once() {
    let f = Fixture::new(3, "threshold = 2\n");
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    let sig = fs::read_dir(b.join("signatures")).unwrap().next().unwrap().unwrap().path();
    fs::copy(&sig, b.join("signatures/copy.minisig")).unwrap();
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::ThresholdNotMet { required: 2, valid: 1 });
}

#[test]
fn expired_bundle_is_refused() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", "2001-01-01T00:00:00Z");
    f.sign(&b, 0);
    assert!(
        matches!(f.verify(&b).unwrap_err(), VerifyError::Expired { expires, .. } if expires == "2001-01-01T00:00:00Z")
    );
}

#[test]
fn signature_by_revoked_key_is_refused_even_with_enough_others() {
    let f = Fixture::new(3, "threshold = 1\n");
    let revoked = f.keys[1].key_id();
    std::fs::write(f.root.join("trust/trust.toml"), format!("threshold = 1\nrevoked = [\"{revoked}\"]\n")).unwrap();
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 0);
    f.sign(&b, 1);
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::RevokedKey { key_id: revoked });
}

#[test]
fn tenant_key_sets_restrict_who_may_approve() {
    let f = Fixture::new(3, "threshold = 1\n");
    let allowed = f.keys[0].key_id();
    std::fs::write(
        f.root.join("trust/trust.toml"),
        format!("threshold = 1\n[tenants.hello]\nkeys = [\"{allowed}\"]\n"),
    )
    .unwrap();
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 1);
    assert_eq!(
        f.verify(&b).unwrap_err(),
        VerifyError::KeyNotAllowedForTenant { key_id: f.keys[1].key_id(), tenant: "hello".into() }
    );
    f.sign(&b, 0);
    assert_eq!(f.verify(&b).unwrap().signers(), [allowed]);
}

#[test]
fn garbage_signature_file_is_malformed() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    fs::create_dir_all(b.join("signatures")).unwrap();
    fs::write(b.join("signatures/x.minisig"), b"untrusted comment: hi\nnot base64!\n").unwrap();
    assert!(matches!(
        f.verify(&b).unwrap_err(),
        VerifyError::MalformedSignature { file, source: signer::minisign::FormatError::Base64 { .. } } if file == "x.minisig"
    ));
}

#[test]
fn non_canonical_manifest_is_malformed_even_if_signed() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    let pretty = serde_json::to_vec_pretty(&manifest("hello", FUTURE)).unwrap();
    fs::write(b.join("manifest.json"), &pretty).unwrap();
    f.sign(&b, 0);
    assert!(matches!(
        f.verify(&b).unwrap_err(),
        VerifyError::MalformedManifest(signer::manifest::ManifestError::NotCanonical)
    ));
}

#[test]
fn oversized_manifest_is_refused_while_reading() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    fs::write(b.join("manifest.json"), vec![b' '; 70 * 1024]).unwrap();
    let err = BundleBytes::read(&b, &ReadLimits::default()).unwrap_err();
    assert!(err.to_string().contains("over the 65536-byte cap"), "{err}");
}

#[test]
fn oversized_module_is_refused_while_reading() {
    let f = Fixture::new(3, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    let limits = ReadLimits { max_module_bytes: 4, ..ReadLimits::default() };
    let err = BundleBytes::read(&b, &limits).unwrap_err();
    assert!(err.to_string().contains("module.wasm is 8 bytes, over the 4-byte cap"), "{err}");
}

#[test]
fn trust_store_threshold_that_cannot_be_met_is_refused() {
    let f = Fixture::new(2, "threshold = 3\n");
    let err = TrustStore::load(&f.root.join("trust")).unwrap_err();
    assert!(err.to_string().contains("threshold 3 can never be met: only 2 usable"), "{err}");
}

#[test]
fn log_keys_never_approve_modules() {
    let f = Fixture::new(3, "threshold = 1\n");
    let host = f.keys[2].key_id();
    std::fs::write(
        f.root.join("trust/trust.toml"),
        format!("threshold = 1\n[log_keys]\n\"{host}\" = [\"nightcore.example/node-1\"]\n"),
    )
    .unwrap();
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 2);
    assert_eq!(f.verify(&b).unwrap_err(), VerifyError::LogKeyCannotApprove { key_id: host });
    assert!(f.trust().log_key_for(host, "nightcore.example/node-1").is_ok());
}

#[test]
fn a_log_key_vouches_only_for_the_origins_it_is_bound_to() {
    let f = Fixture::new(3, "threshold = 1\n");
    let (node_a, node_b) = (f.keys[1].key_id(), f.keys[2].key_id());
    std::fs::write(
        f.root.join("trust/trust.toml"),
        format!(
            "threshold = 1\n[log_keys]\n\"{node_a}\" = [\"example/node-a\"]\n\"{node_b}\" = [\"example/node-b\"]\n"
        ),
    )
    .unwrap();
    let trust = f.trust();
    assert!(trust.log_key_for(node_a, "example/node-a").is_ok());
    let refusal = trust.log_key_for(node_a, "example/node-b").unwrap_err();
    assert_eq!(refusal.reason_code(), "log_key_origin_mismatch", "{refusal}");
    assert!(refusal.to_string().contains("may sign only [\"example/node-a\"], not origin \"example/node-b\""));
    let ids: Vec<_> = trust.log_keys_for("example/node-b").map(|k| k.key_id()).collect();
    assert_eq!(ids, [node_b]);
    assert_eq!(trust.log_key_for(f.keys[0].key_id(), "example/node-a").unwrap_err().reason_code(), "untrusted_log_key");
}

#[test]
fn the_old_unbound_log_key_list_is_refused_with_advice() {
    let f = Fixture::new(2, "threshold = 1\n");
    let host = f.keys[1].key_id();
    std::fs::write(f.root.join("trust/trust.toml"), format!("threshold = 1\nlog_keys = [\"{host}\"]\n")).unwrap();
    let err = TrustStore::load(&f.root.join("trust")).unwrap_err().to_string();
    assert!(err.contains("log_keys must bind each host key to the checkpoint origins it may sign"), "{err}");
    assert!(err.contains(&format!("[log_keys] \"{host}\" = [")), "{err}");
}

#[test]
fn a_key_scoped_to_one_tenant_cannot_take_over_another() {
    // The takeover: billing's two keys sign `hello v999`. Were they allowed
    // to, the real hello releases would afterwards be refused as downgrades.
    let f = Fixture::new(3, "threshold = 1\n");
    let billing = [f.keys[1].key_id(), f.keys[2].key_id()];
    std::fs::write(
        f.root.join("trust/trust.toml"),
        format!("threshold = 1\n[tenants.billing]\nkeys = [\"{}\", \"{}\"]\nthreshold = 2\n", billing[0], billing[1]),
    )
    .unwrap();
    let b = f.bundle("b", FUTURE);
    f.sign(&b, 1);
    f.sign(&b, 2);
    let err = f.verify(&b).unwrap_err();
    assert!(matches!(&err, VerifyError::KeyNotAllowedForTenant { tenant, .. } if tenant == "hello"), "{err}");
    assert_eq!(err.reason_code(), "key_not_allowed_for_tenant");
    // The unscoped key still approves hello on its own.
    let ok = f.bundle("ok", FUTURE);
    f.sign(&ok, 0);
    assert_eq!(f.verify(&ok).unwrap().signers(), [f.keys[0].key_id()]);
    let trust = f.trust();
    assert!(trust.may_approve(billing[0], "billing") && !trust.may_approve(billing[0], "hello"));
    assert!(!trust.may_approve(f.keys[0].key_id(), "billing"), "billing has its own set");
}

#[test]
fn a_store_whose_keys_are_all_scoped_approves_no_other_tenant() {
    let f = Fixture::new(2, "threshold = 1\n");
    let (a, b) = (f.keys[0].key_id(), f.keys[1].key_id());
    std::fs::write(
        f.root.join("trust/trust.toml"),
        format!("threshold = 1\n[tenants.alpha]\nkeys = [\"{a}\"]\n[tenants.beta]\nkeys = [\"{b}\"]\n"),
    )
    .unwrap();
    let bundle = f.bundle("hello", FUTURE);
    f.sign(&bundle, 0);
    f.sign(&bundle, 1);
    assert_eq!(f.verify(&bundle).unwrap_err().reason_code(), "key_not_allowed_for_tenant");
}

#[test]
fn one_key_under_two_ids_is_refused_by_the_trust_store() {
    // minisign does not sign a signature's key id: were one key listed under
    // two ids, a relabelled copy of one signature would count twice, and
    // revoking one id would leave the key trusted under the other. Importing
    // the wasmsign2 form of a key already in the store is how it would happen.
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().public_key();
    let alias = signer::wasmsig::import_public_key(&signer::wasmsig::wasmsign2_public_key(&key)).unwrap();
    assert_ne!(alias.key_id(), key.key_id());
    assert_eq!(alias.verifying_key(), key.verifying_key());
    write_trust_store(&dir.path().join("trust"), &[("a", &key), ("b", &alias)], "threshold = 2\n").unwrap();
    let err = TrustStore::load(&dir.path().join("trust")).unwrap_err();
    assert!(matches!(err, signer::trust::TrustError::SameKeyTwice { .. }), "{err}");
    assert!(
        err.to_string().contains("a.pub and") && err.to_string().contains("b.pub hold the same Ed25519 key"),
        "{err}"
    );
    let err = TrustStore::from_keys_and_toml(vec![key, alias], "threshold = 1\n").unwrap_err();
    assert!(err.contains("are the same Ed25519 key"), "{err}");
}

#[test]
fn signing_never_writes_through_a_linked_signatures_directory() {
    // A bundle someone else supplied, whose signatures/ points elsewhere:
    // signing it must not drop a file wherever the link leads.
    let f = Fixture::new(1, "threshold = 1\n");
    let b = f.bundle("b", FUTURE);
    let elsewhere = f.root.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let _ = fs::remove_dir_all(b.join("signatures"));
    std::os::unix::fs::symlink(&elsewhere, b.join("signatures")).unwrap();
    let manifest = fs::read(b.join("manifest.json")).unwrap();
    let err = write_signature(&b, &f.keys[0].sign(&manifest, "c").unwrap()).unwrap_err();
    assert_eq!(err.reason_code(), "signatures_not_a_directory", "{err}");
    assert!(err.to_string().contains("is a symlink, not a directory"), "{err}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}
