//! The build pipeline end to end: `cargo xtask sign --request-only`, the
//! offline `signer sign` by two maintainers, `cargo xtask sign --attach`, and
//! `cargo xtask verify-reproducible` against the signed bundle.

use std::fs;
use std::path::Path;

use crate::support::{cmd, run};

fn keygen(dir: &Path, name: &str) {
    let r = run(cmd("signer").args(["keygen", "--danger-unencrypted-for-tests", "--name", name]).arg("--out").arg(dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn cold_storage_round_trip_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (dist, audit_log) = (dir.path().join("dist"), dir.path().join("state/audit.log"));
    let r = run(cmd("xtask")
        .args(["sign", "--request-only", "hello", "--json"])
        .arg("--dist")
        .arg(&dist)
        .arg("--audit")
        .arg(&audit_log));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let bundle = Path::new(out["bundles"][0]["bundle_dir"].as_str().unwrap()).to_path_buf();
    assert_eq!(bundle, dist.join("hello/1"));
    assert_eq!(out["bundles"][0]["signed_by"], serde_json::Value::Null);
    assert!(fs::read_dir(bundle.join("signatures")).unwrap().next().is_none(), "request-only signs nothing");

    keygen(dir.path(), "alice");
    keygen(dir.path(), "bob");
    let trust = dir.path().join("trust");
    fs::create_dir_all(&trust).unwrap();
    for name in ["alice", "bob"] {
        fs::copy(dir.path().join(format!("{name}.pub")), trust.join(format!("{name}.pub"))).unwrap();
    }
    fs::write(trust.join("trust.toml"), "threshold = 2\n").unwrap();
    let attach =
        || run(cmd("xtask").args(["sign", "--attach", "hello"]).arg("--dist").arg(&dist).arg("--trust").arg(&trust));

    // The offline machine: only the bundle and the key.
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("alice.key")).arg(&bundle)).code, 0);
    let one = attach();
    assert_eq!(one.code, 1, "{}{}", one.stdout, one.stderr);
    assert!(one.stdout.contains("threshold not met: 1 distinct trusted signature(s), 2 required"), "{}", one.stdout);
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("bob.key")).arg(&bundle)).code, 0);
    let both = attach();
    assert_eq!(both.code, 0, "{}{}", both.stdout, both.stderr);
    assert!(both.stdout.contains("hello v1  verified"), "{}", both.stdout);

    let verify = run(cmd("xtask")
        .args(["verify-reproducible", "--json", "hello"])
        .arg("--dist")
        .arg(&dist)
        .arg("--trust")
        .arg(&trust)
        .arg("--audit")
        .arg(&audit_log));
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let report: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    assert_eq!(report["modules"][0]["status"], "identical");

    let log = fs::read_to_string(&audit_log).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["module.signed", "module.rebuilt"]);

    // A manifest edited after signing: the rebuild check refuses it as unverified (exit 1).
    let manifest = bundle.join("manifest.json");
    let text = fs::read_to_string(&manifest).unwrap().replace("\"timeout_ms\":1000", "\"timeout_ms\":9000");
    fs::write(&manifest, text).unwrap();
    let tampered = run(cmd("xtask")
        .args(["verify-reproducible", "--json", "hello"])
        .arg("--dist")
        .arg(&dist)
        .arg("--trust")
        .arg(&trust));
    assert_eq!(tampered.code, 1, "{}{}", tampered.stdout, tampered.stderr);
    let report: serde_json::Value = serde_json::from_str(&tampered.stdout).unwrap();
    assert_eq!(report["modules"][0]["status"], "unverified");
    assert!(report["modules"][0]["error"].as_str().unwrap().contains("bad signature"), "{report}");
}

#[test]
fn same_version_with_different_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    assert_eq!(run(cmd("xtask").args(["sign", "--request-only", "hello"]).arg("--dist").arg(&dist)).code, 0);
    // Pretend version 1 was released with other bytes.
    let manifest = dist.join("hello/1/manifest.json");
    let text = fs::read_to_string(&manifest).unwrap();
    let sha =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["module"]["sha256"].as_str().unwrap().to_string();
    fs::write(&manifest, text.replace(&sha, &"0".repeat(64))).unwrap();
    let r = run(cmd("xtask").args(["sign", "--request-only", "hello"]).arg("--dist").arg(&dist));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("raise [package.metadata.nightcore] version"), "{}", r.stderr);
}
