//! A cheap, deterministic fuzz pass that runs in CI: thousands of mutations of
//! valid files through every parser. The real fuzzing lives in `fuzz/` (cargo-fuzz);
//! this test keeps the "never panics" promise from regressing between fuzz runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{KeyProtection, LockedSecretKey, PublicKey, SecretKey, Signature};
use signer::trust::TrustStore;

/// xorshift64*: a tiny PRNG so the mutations are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.truncate(i);
            }
            2 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, [b'\n', b'"', b'{', b'=', 0xff, b'A'][rng.below(6)]);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                let chunk: Vec<u8> = out[..i].to_vec();
                out.extend_from_slice(&chunk);
            }
        }
    }
    out
}

#[test]
fn parsers_survive_mutated_input() {
    let key = SecretKey::generate();
    let public = key.public_key().to_file_text().into_bytes();
    let secret = key.to_file_text(KeyProtection::DangerUnencrypted).unwrap().as_bytes().to_vec();
    let signature = key.sign(b"m", "timestamp:1\tfile:m").unwrap().to_file_text().into_bytes();
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: "t".into(),
        version: 1,
        version_label: "1".into(),
        module: ModuleDigest::of(b"x"),
        expires: "2999-01-01T00:00:00Z".into(),
        provenance: Provenance::default(),
        capabilities: Capabilities::default(),
    }
    .to_canonical_bytes()
    .unwrap();
    let caps = b"fuel = 5\nmemory_mib = 1\ntimeout_ms = 1\n[[preopen]]\nguest = \"/d\"\nmode = \"ro\"\n".to_vec();
    let trust = format!("threshold = 1\nrevoked = []\n[tenants.t]\nkeys = [\"{}\"]\n", key.key_id()).into_bytes();

    // The signature formats added for single files and interop.
    let module = b"\0asm\x01\0\0\0\x00\x06\x04note\x01".to_vec();
    let single = signer::embed::embed(&signer::bundle::BundleBytes {
        module: module.clone(),
        manifest: manifest.clone(),
        signatures: vec![signer::bundle::SignatureFile { file_name: "x.minisig".into(), bytes: signature.clone() }],
    })
    .unwrap();
    let wasmsig = signer::wasmsig::sign(&module, &key).unwrap();
    let mut envelope =
        signer::dsse::Envelope::new(signer::intoto::PAYLOAD_TYPE, br#"{"_type":"x","subject":[]}"#.to_vec());
    envelope.sign(&key);
    let envelope = envelope.to_json_bytes();
    let store = TrustStore::from_keys_and_toml(vec![key.public_key()], "threshold = 1\n").unwrap();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0usize;
    for _ in 0..3000 {
        accepted += signer::embed::extract(mutate(&mut rng, &single), &Default::default()).is_ok() as usize;
        accepted += signer::wasmsig::verify_module(&mutate(&mut rng, &wasmsig), &store).is_ok() as usize;
        if let Ok(parsed) = signer::dsse::Envelope::from_json_bytes(&mutate(&mut rng, &envelope)) {
            accepted += 1;
            let _ = signer::intoto::check_subject(&parsed, "00");
        }
        accepted += PublicKey::from_file_bytes(&mutate(&mut rng, &public)).is_ok() as usize;
        if let Ok(locked) = LockedSecretKey::from_file_bytes(&mutate(&mut rng, &secret)) {
            // Unlocking unencrypted keys is cheap; encrypted ones would need a password.
            let _ = locked.unlock(None);
        }
        accepted += Signature::from_file_bytes(&mutate(&mut rng, &signature)).is_ok() as usize;
        accepted += Manifest::from_bytes(&mutate(&mut rng, &manifest)).is_ok() as usize;
        if let Ok(text) = String::from_utf8(mutate(&mut rng, &caps)) {
            let _ = Capabilities::from_toml(&text);
        }
        if let Ok(text) = String::from_utf8(mutate(&mut rng, &trust)) {
            let _ = TrustStore::from_keys_and_toml(vec![key.public_key()], &text);
        }
    }
    // Some mutations are harmless (trailing bytes, comment edits), so some inputs
    // must still parse; if none did, the mutator is broken and the test proves nothing.
    assert!(accepted > 0);
}
