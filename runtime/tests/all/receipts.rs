//! Receipts end to end: `exec --deterministic --receipt`, `verify-receipt`
//! and `replay`.

use std::path::{Path, PathBuf};
use std::process::Command;

use runtime::receipt::SignedReceipt;
use serde_json::Value;
use signer::keyfile::load_or_create_host_key;
use signer::manifest::Capabilities;
use signer::trust::write_trust_store;

use crate::support::{Signer, fixture};

const EXE: &str = env!("CARGO_BIN_EXE_runtime");

struct Node {
    dir: tempfile::TempDir,
    signer: Signer,
    host_key: PathBuf,
}

impl Node {
    /// A node whose trust store lists the host key as a log key.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(dir.path());
        let host_key = dir.path().join("state/host.key");
        let host = load_or_create_host_key(&host_key).unwrap();
        write_trust_store(
            &signer.trust_dir,
            &[("ci", &signer.key.public_key()), ("host", &host.public_key())],
            &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"{}\"]\n", host.key_id(), signer::config::default_origin()),
        )
        .unwrap();
        Self { dir, signer, host_key }
    }

    fn run(&self, args: &[&str]) -> (i32, Value) {
        let output = Command::new(EXE)
            .current_dir(self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .args(args)
            .output()
            .unwrap();
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{e}: {:?} {:?}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
        });
        (output.status.code().unwrap(), json)
    }

    fn trust(&self) -> &str {
        self.signer.trust_dir.to_str().unwrap()
    }

    fn exec_with_receipt(&self, bundle: &Path, receipt: &Path, deterministic: bool) -> Value {
        let mut args =
            vec!["exec", "--json", "--trust", self.trust(), "--receipt", s(receipt), "--host-key", s(&self.host_key)];
        if deterministic {
            args.push("--deterministic");
        }
        args.extend([s(bundle), "--", "arg1"]);
        let (code, json) = self.run(&args);
        assert_eq!(code, 0, "{json}");
        json
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_deterministic_run_is_verified_and_replayed() {
    let node = Node::new();
    let bundle =
        node.signer.bundle(&node.dir.path().join("b"), "dice", &fixture("clock_random"), Capabilities::default());
    let receipt = node.dir.path().join("receipt.json");
    node.exec_with_receipt(&bundle, &receipt, true);

    let (code, json) = node.run(&["verify-receipt", "--json", "--trust", node.trust(), s(&receipt)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["valid"], true);
    assert_eq!(json["receipt"]["tenant"], "dice");
    assert_eq!(json["receipt"]["args"], serde_json::json!(["arg1"]));
    assert_eq!(json["receipt"]["deterministic"], true);
    assert_eq!(json["receipt"]["stdout_bytes"], 32);

    let (code, json) = node.run(&["replay", "--json", "--trust", node.trust(), s(&receipt), s(&bundle)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["reproduced"], true);
}

#[test]
fn tampered_and_foreign_receipts_are_refused() {
    let node = Node::new();
    let bundle = node.signer.bundle(&node.dir.path().join("b"), "hello", &fixture("hello"), Capabilities::default());
    let receipt = node.dir.path().join("receipt.json");
    node.exec_with_receipt(&bundle, &receipt, true);

    let text = std::fs::read_to_string(&receipt).unwrap();
    let tampered = node.dir.path().join("tampered.json");
    std::fs::write(&tampered, text.replace(r#""exit_code":0"#, r#""exit_code":1"#)).unwrap();
    let (code, json) = node.run(&["verify-receipt", "--json", "--trust", node.trust(), s(&tampered)]);
    assert_eq!(code, 1);
    assert_eq!(json["reason"], "bad_signature");

    // A receipt signed by a key that is not a log key of the trust store.
    let other_key = node.dir.path().join("other.key");
    load_or_create_host_key(&other_key).unwrap();
    let mut args = vec!["exec", "--json", "--trust", node.trust(), "--receipt", s(&tampered), "--host-key"];
    args.extend([s(&other_key), s(&bundle)]);
    let (code, _) = node.run(&args);
    assert_eq!(code, 0);
    let (code, json) = node.run(&["verify-receipt", "--json", "--trust", node.trust(), s(&tampered)]);
    assert_eq!(code, 1);
    assert_eq!(json["reason"], "untrusted_key");
}

#[test]
fn replay_detects_a_different_module_and_needs_determinism() {
    let node = Node::new();
    let bundle = node.signer.bundle(&node.dir.path().join("b"), "hello", &fixture("hello"), Capabilities::default());
    let receipt = node.dir.path().join("receipt.json");
    node.exec_with_receipt(&bundle, &receipt, true);
    let other = node.signer.bundle(&node.dir.path().join("other"), "hello", &fixture("env"), Capabilities::default());
    let (code, json) = node.run(&["replay", "--json", "--trust", node.trust(), s(&receipt), s(&other)]);
    assert_eq!(code, 1, "{json}");
    let differences: Vec<&str> = json["differences"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(differences.contains(&"module_sha256") && differences.contains(&"stdout_sha256"), "{differences:?}");

    let plain = node.dir.path().join("plain.json");
    node.exec_with_receipt(&bundle, &plain, false);
    let (code, json) = node.run(&["replay", "--json", "--trust", node.trust(), s(&plain), s(&bundle)]);
    assert_eq!(code, 1);
    assert_eq!(json["reason"], "not_deterministic");
}

#[test]
fn a_receipt_naming_another_node_is_refused_with_its_own_reason() {
    // This node's host key signs a receipt that claims node B ran it: the key
    // is a log key, but bound to this node's origin only.
    let node = Node::new();
    let bundle = node.signer.bundle(&node.dir.path().join("b"), "hello", &fixture("hello"), Capabilities::default());
    let receipt = node.dir.path().join("receipt.json");
    node.exec_with_receipt(&bundle, &receipt, false);
    let mut signed = SignedReceipt::from_bytes(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(signed.receipt.origin, signer::config::default_origin());
    let host = load_or_create_host_key(&node.host_key).unwrap();
    let mut forged = signed.receipt.clone();
    forged.origin = "nightcore.example/node-b".into();
    signed = forged.sign(&host).unwrap();
    std::fs::write(&receipt, signed.to_bytes().unwrap()).unwrap();
    let (code, json) = node.run(&["verify-receipt", "--json", "--trust", node.trust(), s(&receipt)]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["valid"], false);
    assert_eq!(json["reason"], "log_key_origin_mismatch", "{json}");
}
