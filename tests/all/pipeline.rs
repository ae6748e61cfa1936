//! The build pipeline end to end: `cargo xtask sign --request-only`, the
//! offline `signer sign` by two maintainers, `cargo xtask sign --attach`, the
//! build provenance statement beside the bundle (in-toto / SLSA in a DSSE
//! envelope) signed by both, and `cargo xtask verify-reproducible` against the
//! signed bundle and statement, tampered and honest.

use std::fs;
use std::path::{Path, PathBuf};

use signer::dsse::{Envelope, EnvelopePolicy, verify_envelope};
use signer::keyfile::{PasswordSource, load_secret_key};
use signer::trust::TrustStore;

use crate::support::{cmd, run};

fn keygen(dir: &Path, name: &str) {
    let r = run(cmd("signer").args(["keygen", "--danger-unencrypted-for-tests", "--name", name]).arg("--out").arg(dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn read_envelope(path: &Path) -> Envelope {
    Envelope::from_json_bytes(&fs::read(path).unwrap()).unwrap()
}

fn json_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// `cargo xtask verify-reproducible --json hello` with extra arguments: exit
/// code, the JSON and stderr.
fn verify_reproducible(dist: &Path, extra: &[&std::ffi::OsStr]) -> (i32, serde_json::Value, String) {
    let r = run(cmd("xtask").args(["verify-reproducible", "--json", "hello"]).arg("--dist").arg(dist).args(extra));
    let json = serde_json::from_str(&r.stdout).unwrap_or(serde_json::Value::Null);
    (r.code, json, r.stderr)
}

/// A copy of the modules workspace without build output.
fn copy_modules(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "target" {
                copy_modules(&entry.path(), &target);
            }
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("modules")
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

    // The statement to be signed sits beside the bundle, not inside it.
    let statement_path = dist.join("hello/1.intoto.json");
    assert_eq!(out["bundles"][0]["statement"], statement_path.to_str().unwrap());
    let requested = read_envelope(&statement_path);
    assert!(requested.signatures.is_empty(), "request-only leaves the statement unsigned too");
    assert_eq!(requested.payload_type, "application/vnd.in-toto+json");
    let statement = json_of(&requested.payload);
    let manifest = json_of(&fs::read(bundle.join("manifest.json")).unwrap());
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"].as_array().unwrap().len(), 1);
    assert_eq!(statement["subject"][0]["name"], "hello/1/module.wasm");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], manifest["module"]["sha256"]);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], out["bundles"][0]["module_sha256"]);
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], "https://nightcore.dev/xtask-build/v1");
    assert_eq!(definition["externalParameters"]["target"], "wasm32-wasip1");
    assert_eq!(definition["externalParameters"]["buildFlags"], manifest["provenance"]["build_flags"]);
    assert_eq!(definition["internalParameters"]["toolchain"]["rustc"], manifest["provenance"]["toolchain"]);
    assert!(definition["internalParameters"]["toolchain"]["cargo"].as_str().unwrap().starts_with("cargo 1.95.0"));
    let dependencies = definition["resolvedDependencies"].as_array().unwrap();
    assert_eq!(dependencies[0]["digest"]["nightcoreSourceTreeV1"], manifest["provenance"]["source_tree_sha256"]);
    assert_eq!(dependencies[1]["name"], "Cargo.lock");
    assert_eq!(dependencies[1]["digest"]["sha256"], manifest["provenance"]["cargo_lock_sha256"]);
    assert!(
        statement["predicate"]["runDetails"]["metadata"]["invocationId"].as_str().unwrap().starts_with("urn:uuid:")
    );

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
    // The statement travelled with the bundle: `signer sign` signed it with the same keys.
    assert!(
        both.stdout.contains(&format!("build provenance: {} verified", statement_path.display())),
        "{}",
        both.stdout
    );
    let offline = read_envelope(&statement_path);
    assert_eq!(offline.payload, requested.payload, "the offline signers signed the statement as written");
    assert_eq!(offline.signatures.len(), 2);
    // A statement about other bytes is refused before the key is even unlocked.
    let mut other = offline.clone();
    other.payload = String::from_utf8(other.payload.clone())
        .unwrap()
        .replace(manifest["module"]["sha256"].as_str().unwrap(), &"0".repeat(64))
        .into_bytes();
    fs::write(&statement_path, other.to_json_bytes()).unwrap();
    let signature_files = || {
        let mut files: Vec<(std::path::PathBuf, Vec<u8>)> = fs::read_dir(bundle.join("signatures"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    };
    let signatures_before = signature_files();
    let refused = run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("alice.key")).arg(&bundle));
    assert_eq!(signature_files(), signatures_before, "nothing was signed");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("refusing to sign the build provenance statement"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&"0".repeat(64)), "{}", refused.stderr);
    fs::write(&statement_path, offline.to_json_bytes()).unwrap();

    // Signing with the key directly (same version, same bytes) signs the statement already there.
    for name in ["alice", "bob"] {
        let r = run(cmd("xtask")
            .args(["sign", "hello", "--json", "--key"])
            .arg(dir.path().join(format!("{name}.key")))
            .arg("--dist")
            .arg(&dist));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(out["bundles"][0]["created"], false);
        assert_eq!(out["bundles"][0]["statement"], statement_path.to_str().unwrap());
    }
    let signed = read_envelope(&statement_path);
    assert_eq!(signed.payload, requested.payload, "every signer signs the one statement written with the bundle");
    let trust_store = TrustStore::load(&trust).unwrap();
    let policy = EnvelopePolicy { payload_type: "application/vnd.in-toto+json", tenant: "hello" };
    // Sorted as key ids sort (by their bytes), which is how verifiers list signers.
    let mut key_ids: Vec<signer::minisign::KeyId> = ["alice", "bob"]
        .iter()
        .map(|name| {
            load_secret_key(&dir.path().join(format!("{name}.key")), PasswordSource::EnvironmentOnly).unwrap().key_id()
        })
        .collect();
    key_ids.sort();
    let keys: Vec<String> = key_ids.iter().map(ToString::to_string).collect();
    let signers: Vec<String> =
        verify_envelope(&signed, &trust_store, &policy).unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(signers, keys);
    assert!(attach().stdout.contains(&format!("build provenance: {} verified", statement_path.display())));

    let verify = run(cmd("xtask")
        .args(["verify-reproducible", "--json", "--require-statement", "hello"])
        .arg("--dist")
        .arg(&dist)
        .arg("--trust")
        .arg(&trust)
        .arg("--audit")
        .arg(&audit_log));
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    let report: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    assert_eq!(report["modules"][0]["status"], "identical");
    let checked = &report["modules"][0]["statement"];
    assert_eq!(checked["status"], "verified", "{report:#}");
    assert_eq!(checked["path"], statement_path.to_str().unwrap());
    assert_eq!(checked["signers"], serde_json::json!(keys));
    assert_eq!(checked["differences"], serde_json::json!([]), "every recorded input matches the rebuild");

    let log = fs::read_to_string(&audit_log).unwrap();
    let entries: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["module.signed", "module.rebuilt"]);
    assert_eq!(entries[1]["data"]["statement"], "verified");

    // The statement is checked before anything is rebuilt. A payload edited
    // under its signatures: a bad signature, a definite "no".
    let honest = fs::read(&statement_path).unwrap();
    let lock = manifest["provenance"]["cargo_lock_sha256"].as_str().unwrap();
    let mut edited = signed.clone();
    edited.payload = String::from_utf8(edited.payload).unwrap().replace(lock, &"0".repeat(64)).into_bytes();
    assert_ne!(edited.payload, signed.payload);
    fs::write(&statement_path, edited.to_json_bytes()).unwrap();
    let (code, json, stderr) = verify_reproducible(&dist, &["--trust".as_ref(), trust.as_os_str()]);
    assert_eq!(code, 1, "{json:#}{stderr}");
    let module = &json["modules"][0];
    assert_eq!(module["status"], "unverified");
    assert_eq!(module["statement"]["status"], "unverified");
    assert_eq!(module["statement"]["reason"], "bad_signature");
    let error = module["error"].as_str().unwrap();
    assert!(error.contains("the build provenance statement") && error.contains("bad signature by key"), "{error}");

    // The same edit signed again by both maintainers: the signatures verify,
    // but the statement no longer tells the manifest's story, and says where.
    edited.signatures.clear();
    for name in ["alice", "bob"] {
        edited
            .sign(&load_secret_key(&dir.path().join(format!("{name}.key")), PasswordSource::EnvironmentOnly).unwrap());
    }
    assert!(verify_envelope(&edited, &trust_store, &policy).is_ok());
    fs::write(&statement_path, edited.to_json_bytes()).unwrap();
    let (code, json, stderr) = verify_reproducible(&dist, &["--trust".as_ref(), trust.as_os_str()]);
    assert_eq!(code, 1, "{json:#}{stderr}");
    let module = &json["modules"][0];
    assert_eq!(module["statement"]["status"], "invalid");
    assert_eq!(module["statement"]["reason"], "manifest_mismatch");
    let error = module["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("cargo_lock_sha256 (statement \"{}\", manifest \"{lock}\")", "0".repeat(64))),
        "{error}"
    );

    // A bundle without a statement (signed before they existed) is reported;
    // with --require-statement it is a "no".
    fs::remove_file(&statement_path).unwrap();
    let (code, json, stderr) =
        verify_reproducible(&dist, &["--trust".as_ref(), trust.as_os_str(), "--require-statement".as_ref()]);
    assert_eq!(code, 1, "{json:#}{stderr}");
    assert_eq!(json["modules"][0]["statement"]["status"], "missing");
    fs::write(&statement_path, &honest).unwrap();

    // A rebuild from a changed source: the bytes differ, and the report names
    // the recorded inputs the rebuild did not use, with both values.
    let changed = dir.path().join("changed-modules");
    copy_modules(&modules_dir(), &changed);
    let main = changed.join("hello/src/main.rs");
    let source = fs::read_to_string(&main).unwrap();
    fs::write(&main, source.replace("const DEFAULT_NAME: &str = \"world\";", "const DEFAULT_NAME: &str = \"moon\";"))
        .unwrap();
    let extra = ["--trust".as_ref(), trust.as_os_str(), "--modules-dir".as_ref(), changed.as_os_str()];
    let (code, json, stderr) = verify_reproducible(&dist, &extra);
    assert_eq!(code, 1, "{json:#}{stderr}");
    let module = &json["modules"][0];
    assert_eq!(module["status"], "different");
    assert_eq!(module["statement"]["status"], "verified");
    let differences = module["statement"]["differences"].as_array().unwrap();
    let source_tree = differences.iter().find(|d| d["field"] == "source_tree_sha256").expect("source tree named");
    let recorded_tree = manifest["provenance"]["source_tree_sha256"].as_str().unwrap();
    assert_eq!(source_tree["recorded"], recorded_tree);
    assert_ne!(source_tree["rebuilt"], recorded_tree);
    // The copy is no git checkout, so its commit may be named too; nothing else changed.
    for d in differences {
        assert!(matches!(d["field"].as_str().unwrap(), "source_tree_sha256" | "commit"), "{d}");
    }
    let human = run(cmd("xtask")
        .args(["verify-reproducible", "hello"])
        .arg("--dist")
        .arg(&dist)
        .arg("--trust")
        .arg(&trust)
        .arg("--modules-dir")
        .arg(&changed));
    assert_eq!(human.code, 1, "{}{}", human.stdout, human.stderr);
    assert!(human.stdout.contains("NOT reproducible"), "{}", human.stdout);
    let line =
        format!("    source_tree_sha256: recorded {recorded_tree} now {}\n", source_tree["rebuilt"].as_str().unwrap());
    assert!(human.stdout.contains(&line), "{}", human.stdout);

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
    let first = run(cmd("xtask").args(["sign", "--request-only", "hello"]).arg("--dist").arg(&dist));
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
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
