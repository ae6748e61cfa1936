//! A cheap, deterministic fuzz pass that runs in CI: thousands of mutations
//! of valid files through every parser of the product, and a cap test for
//! each file it reads. The real fuzzing lives in `fuzz/` (cargo-fuzz); this
//! keeps the "never panics, every read is capped" promise from regressing
//! between fuzz runs. Each valid input is made by the real binaries or
//! writers, so the mutations start from what a node really holds.

use std::fs;

use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{KeyProtection, LockedSecretKey, PublicKey, SecretKey, Signature};
use signer::trust::TrustStore;

use crate::support::{cmd, run, signed_hello};

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
fn signer_formats_survive_mutation() {
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

/// A node that has run one signed bundle: the files its binaries wrote.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (bundle, trust) = signed_hello(d);
        let host = |name: &str| {
            let mut c = cmd(name);
            c.env("XDG_STATE_HOME", d.join("xdg-state"));
            c
        };
        let exec = run(host("runtime")
            .arg("exec")
            .arg("--trust")
            .arg(&trust)
            .arg("--audit")
            .arg(d.join("audit.log"))
            .arg("--receipt")
            .arg(d.join("receipt.json"))
            .arg(&bundle));
        assert_eq!(exec.code, 0, "{}", exec.stderr);
        let proof = run(host("guardian").args(["audit", "prove", "0", "--audit"]).arg(d.join("audit.log")));
        assert_eq!(proof.code, 0, "{}", proof.stderr);
        fs::write(d.join("proof.json"), proof.stdout).unwrap();
        let scan = run(host("guardian")
            .args(["scan", "--trust"])
            .arg(&trust)
            .arg("--state")
            .arg(d.join("state"))
            .arg(bundle.parent().unwrap()));
        assert_eq!(scan.code, 0, "{}{}", scan.stdout, scan.stderr);
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn host_public(&self) -> PublicKey {
        signer::keyfile::load_public_key(&self.path("xdg-state/nightcore/host.pub")).unwrap()
    }
}

#[test]
fn receipts_proofs_state_and_config_survive_mutation() {
    let node = Node::new();
    let receipt = fs::read(node.path("receipt.json")).unwrap();
    let proof = fs::read(node.path("proof.json")).unwrap();
    let state = fs::read(node.path("state/state.json")).unwrap();
    let config = NODE_CONFIG.as_bytes();

    // Each input is valid before it is mutated: the passes start from files
    // the parsers accept, and reach their deeper checks.
    let origin = runtime::receipt::SignedReceipt::from_bytes(&receipt).unwrap().receipt.origin.clone();
    let log_key = node.host_public();
    let trust = TrustStore::from_keys_and_toml(
        // A module-approving key too: a store of log keys alone is refused.
        vec![log_key.clone(), SecretKey::generate().public_key()],
        &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"{origin}\"]\n", log_key.key_id()),
    )
    .unwrap();
    let signed = runtime::receipt::SignedReceipt::from_bytes(&receipt).unwrap();
    signed.verify(&trust).unwrap();
    let parsed = audit::AuditProof::from_json_bytes(&proof).unwrap();
    audit::verify_proof(&parsed, log_key.verifying_key(), audit::OldTree::DangerouslyUnanchored).unwrap();
    let audit::AuditProof::Inclusion(inclusion) = &parsed else { panic!("prove wrote {parsed:?}") };
    let tlog_proof = inclusion.to_tlog_proof().into_bytes();
    assert_eq!(audit::AuditProof::from_bytes(&tlog_proof).unwrap(), parsed);
    let state_verifier = guardian::state::StateVerifier::new(vec![node_state_key(&node)], "the node's host key");
    let scratch = node.path("mutated");
    fs::create_dir_all(&scratch).unwrap();
    fs::write(scratch.join("state.json"), &state).unwrap();
    assert_eq!(guardian::state::read_state(&scratch, &state_verifier).unwrap().tenants.len(), 1);
    fs::write(scratch.join("nightcore.toml"), config).unwrap();
    signer::config::NodeConfig::load(Some(&scratch.join("nightcore.toml"))).unwrap();

    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut accepted = [0usize; 4];
    for _ in 0..1500 {
        if let Ok(r) = runtime::receipt::SignedReceipt::from_bytes(&mutate(&mut rng, &receipt)) {
            accepted[0] += r.verify(&trust).is_ok() as usize;
        }
        if let Ok(p) = audit::AuditProof::from_json_bytes(&mutate(&mut rng, &proof)) {
            accepted[1] += audit::verify_proof(&p, log_key.verifying_key(), audit::OldTree::DangerouslyUnanchored)
                .is_ok() as usize;
        }
        // A mutated tlog-proof may still parse; if it verifies, it proves
        // the very entry the original did, never another.
        if let Ok(audit::AuditProof::Inclusion(p)) = audit::AuditProof::from_bytes(&mutate(&mut rng, &tlog_proof))
            && audit::verify_inclusion_proof(&p, log_key.verifying_key()).is_ok()
        {
            assert_eq!((p.seq, &p.entry), (inclusion.seq, &inclusion.entry));
        }
        fs::write(scratch.join("state.json"), mutate(&mut rng, &state)).unwrap();
        accepted[2] += guardian::state::read_state(&scratch, &state_verifier).is_ok() as usize;
        fs::write(scratch.join("nightcore.toml"), mutate(&mut rng, config)).unwrap();
        accepted[3] += signer::config::NodeConfig::load(Some(&scratch.join("nightcore.toml"))).is_ok() as usize;
    }
    // A signed file survives only mutations that change nothing it signs
    // (whitespace the parser skips, say), so few do; the config is unsigned,
    // so a mutated one often still loads. Either way the loop ran every
    // parser to the end, which is the property.
    assert!(accepted[3] > 0, "no mutated config loaded: the mutator is broken ({accepted:?})");
}

#[test]
fn every_file_read_is_capped() {
    let node = Node::new();
    let over = |max: u64| vec![b' '; usize::try_from(max).unwrap() + 1];

    let err =
        runtime::receipt::SignedReceipt::from_bytes(&over(runtime::receipt::MAX_RECEIPT_BYTES as u64)).unwrap_err();
    assert_eq!(err.reason_code(), "malformed_receipt", "{err}");
    assert!(matches!(err, runtime::receipt::ReceiptError::TooLarge { .. }), "{err}");

    // Handed in as bytes, the same cap holds.
    let err = audit::AuditProof::from_json_bytes(&over(audit::MAX_PROOF_BYTES)).unwrap_err();
    assert!(matches!(&err, audit::ProofReadError::Malformed(m) if m.contains("-byte cap")), "{err}");

    let big_proof = node.path("big-proof.json");
    fs::write(&big_proof, over(audit::MAX_PROOF_BYTES)).unwrap();
    let err = audit::AuditProof::read(&big_proof).unwrap_err();
    assert!(matches!(err, audit::ProofReadError::Read(signer::fsutil::ReadCappedError::TooLarge { .. })), "{err}");

    let state_dir = node.path("big-state");
    fs::create_dir_all(&state_dir).unwrap();
    let file = fs::File::create(state_dir.join("state.json")).unwrap();
    // Sparse: the cap is 256 MiB, and the size alone must refuse it.
    file.set_len(guardian::state::MAX_STATE_BYTES + 1).unwrap();
    let verifier = guardian::state::StateVerifier::new(vec![node_state_key(&node)], "the node's host key");
    let err = guardian::state::read_state(&state_dir, &verifier).unwrap_err();
    assert_eq!(err.reason_code(), "state_malformed", "{err}");
    assert!(err.to_string().contains("over the"), "{err}");

    let config = node.path("big.toml");
    fs::write(&config, over(signer::config::MAX_CONFIG_BYTES)).unwrap();
    let err = signer::config::NodeConfig::load(Some(&config)).unwrap_err();
    assert!(
        matches!(err, signer::config::ConfigError::Read(signer::fsutil::ReadCappedError::TooLarge { .. })),
        "{err}"
    );

    // And none of them reads a FIFO, which would block: refused as not a file.
    let fifo = node.path("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert!(matches!(
        audit::AuditProof::read(&fifo),
        Err(audit::ProofReadError::Read(signer::fsutil::ReadCappedError::NotAFile { .. }))
    ));
    assert!(matches!(
        signer::config::NodeConfig::load(Some(&fifo)),
        Err(signer::config::ConfigError::Read(signer::fsutil::ReadCappedError::NotAFile { .. }))
    ));
}

/// The key the guardian signed the node's state with.
fn node_state_key(node: &Node) -> PublicKey {
    signer::keyfile::load_public_key(&node.path("state/host.pub")).unwrap()
}

/// Every setting of `nightcore.toml`, as the module documentation lists them.
const NODE_CONFIG: &str = r#"trust_dir = "trust"
state_dir = "state"
audit_log = "state/audit.log"
host_key = "state/host.key"
cache_dir = "cache"
cache_key = "state/cache.key"
origin = "nightcore.example/node-1"

[retention]
keep_versions = 3
quarantine_days = 90

[tenants.hello]
fuel = 50000000
memory_mib = 32
timeout_ms = 1000
max_output_bytes = 65536
env = { GREETING = "hello" }
dirs = { "/input" = "/srv/tenants/hello/in" }
root = "/srv/tenants/hello"
network = []
read_only = ["/input"]
"#;
