//! Interoperability with the real `wasmsign2` command line (WebAssembly
//! tool-conventions signatures) in both directions: modules we sign with
//! `signer export-wasmsig` pass `wasmsign2 verify`, and modules `wasmsign2 sign`
//! signed pass `signer verify` once their key is imported into the trust store,
//! with the same reasons for refusal as bundles.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{cmd, hello_wasm, run};

const EXPIRES: &str = "2999-01-01T00:00:00Z";

/// The wasmsign2 command line, installed by `cargo xtask test` and `.ci/run`.
fn wasmsign2() -> Command {
    let found = Command::new("wasmsign2").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the wasmsign2 CLI is required for the tool-conventions interop tests; `cargo xtask test` installs it \
         (cargo install --locked wasmsign2-cli --version 0.2.8)"
    );
    Command::new("wasmsign2")
}

/// An unsigned bundle of the hello module at `dir/bundle`.
fn make_bundle(dir: &Path) -> PathBuf {
    let wasm = dir.join("hello.wasm");
    fs::write(&wasm, hello_wasm()).unwrap();
    let bundle = dir.join("bundle");
    let r = run(cmd("signer")
        .args(["bundle", "--name", "hello", "--version", "7", "--expires", EXPIRES])
        .arg("--wasm")
        .arg(&wasm)
        .arg("--out")
        .arg(&bundle));
    assert_eq!(r.code, 0, "{}", r.stderr);
    bundle
}

/// `signer export-wasmsig INPUT --key KEY --out OUT`, with `extra` arguments.
fn export_wasmsig(input: &Path, key: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> crate::support::Run {
    run(cmd("signer").arg("export-wasmsig").arg(input).arg("--key").arg(key).arg("--out").arg(out).args(extra))
}

/// `signer keygen` for a throwaway key; returns its key id.
fn keygen(dir: &Path, name: &str) -> String {
    let r = run(cmd("signer")
        .args(["keygen", "--danger-unencrypted-for-tests", "--json", "--name", name])
        .arg("--out")
        .arg(dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    json["key_id"].as_str().unwrap().to_string()
}

/// A trust store at `dir/name` holding copies of `pubs`.
fn trust_store(dir: &Path, name: &str, pubs: &[&Path], trust_toml: &str) -> PathBuf {
    let trust = dir.join(name);
    fs::create_dir_all(&trust).unwrap();
    for (i, p) in pubs.iter().enumerate() {
        fs::copy(p, trust.join(format!("k{i}.pub"))).unwrap();
    }
    fs::write(trust.join("trust.toml"), trust_toml).unwrap();
    trust
}

/// `signer verify --json`: the exit code and the JSON it printed.
fn verify(trust: &Path, path: &Path) -> (i32, serde_json::Value) {
    let r = run(cmd("signer").arg("verify").arg("--json").arg("--trust").arg(trust).arg(path));
    let json = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("no JSON: {}{}", r.stdout, r.stderr));
    (r.code, json)
}

/// `signer verify --json`: the exit code and the reason ("" when verified).
fn reason(trust: &Path, path: &Path) -> (i32, String) {
    let (code, json) = verify(trust, path);
    (code, json["reason"].as_str().unwrap_or("").to_string())
}

/// A copy of `file` at `dir/name` with byte `at` (negative: from the end) XORed with 1.
fn flipped(dir: &Path, name: &str, file: &Path, at: isize) -> PathBuf {
    let mut bytes = fs::read(file).unwrap();
    let at = if at < 0 { bytes.len() - at.unsigned_abs() } else { at as usize };
    bytes[at] ^= 0x01;
    let out = dir.join(name);
    fs::write(&out, bytes).unwrap();
    out
}

/// wasmsign2 refuses `file` under `key` because no signature verifies: its
/// verification error (exit 1), not a usage error (2) or a file it could not read.
fn assert_wasmsign2_refuses(file: &Path, key: &Path) {
    let v = run(wasmsign2().arg("verify").arg("-i").arg(file).arg("-K").arg(key));
    assert_eq!(v.code, 1, "wasmsign2 on {}: {}{}", file.display(), v.stdout, v.stderr);
    assert!(v.stderr.contains("No valid signatures"), "wasmsign2 on {}: {}", file.display(), v.stderr);
}

/// The key id `wasmsign2 -v show` prints for the (first) signature of `file`.
fn wasmsign2_shown_key_id(file: &Path) -> String {
    let r = run(wasmsign2().arg("-v").arg("show").arg("-i").arg(file));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let start = r.stdout.find("(key id: [").unwrap_or_else(|| panic!("no key id in {}", r.stdout)) + 10;
    r.stdout[start..start + 24].to_string()
}

#[test]
fn our_export_is_verified_by_wasmsign2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = make_bundle(d);
    let key_id = keygen(d, "a");
    let (signed, pk) = (d.join("hello.wasmsig.wasm"), d.join("a.wasmsign2.pk"));
    let r = export_wasmsig(
        &bundle,
        &d.join("a.key"),
        &signed,
        &["--public-key-out".as_ref(), pk.as_ref(), "--json".as_ref()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["key_id"], key_id.as_str());
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(out["module_sha256"], manifest["module"]["sha256"], "the signed module is the bundle's module");

    let v = run(wasmsign2().arg("verify").arg("-i").arg(&signed).arg("-K").arg(&pk));
    assert_eq!(v.code, 0, "wasmsign2 rejected our signature: {}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("Signature is valid."), "{}", v.stdout);
    assert_eq!(wasmsign2_shown_key_id(&signed), out["wasmsign2_key_id"].as_str().unwrap());

    // A changed byte in the module (the data segment, last) is caught by wasmsign2 too.
    let tampered = flipped(d, "tampered.wasm", &signed, -1);
    assert_wasmsign2_refuses(&tampered, &pk);
    // So is a signature checked against another key.
    keygen(d, "b");
    let other = d.join("b.wasmsign2.pk");
    let r = run(cmd("signer").arg("export-wasmsig-key").arg(d.join("b.pub")).arg("--out").arg(&other));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_wasmsign2_refuses(&signed, &other);
    // `export-wasmsig-key` writes what `--public-key-out` wrote.
    let again = d.join("a.again.pk");
    assert_eq!(run(cmd("signer").arg("export-wasmsig-key").arg(d.join("a.pub")).arg("--out").arg(&again)).code, 0);
    assert_eq!(fs::read(&again).unwrap(), fs::read(&pk).unwrap());

    // We verify our own export, and tell it from a bundle.
    let trust = trust_store(d, "trust", &[&d.join("a.pub")], "threshold = 1\n");
    let (code, json) = verify(&trust, &signed);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["format"], "wasmsig");
    assert_eq!(json["verified"], true);
    assert_eq!(json["signers"], serde_json::json!([key_id]));
    assert!(json.get("name").is_none() && json.get("version").is_none(), "a wasmsig module has no manifest: {json}");
    assert_eq!(reason(&trust, &tampered), (1, "hash_mismatch".into()));
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(d.join("a.key")).arg(&bundle)).code, 0);
    let (code, json) = verify(&trust, &bundle);
    assert_eq!((code, json["format"].as_str()), (0, Some("bundle")));

    // A bundle whose module no longer matches its manifest is not signed.
    fs::write(bundle.join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let refused = d.join("refused.wasm");
    let r = export_wasmsig(&bundle, &d.join("a.key"), &refused, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("refusing to sign: module.wasm has sha256"), "{}", r.stderr);
    assert!(!refused.exists());
}

#[test]
fn wasmsign2_signed_modules_verify_against_the_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = d.join("hello.wasm");
    fs::write(&module, hello_wasm()).unwrap();
    let (sk, pk) = (d.join("w.sk"), d.join("w.pk"));
    let g = run(wasmsign2().arg("keygen").arg("-k").arg(&sk).arg("-K").arg(&pk));
    assert_eq!(g.code, 0, "{}", g.stderr);
    let signed = d.join("signed.wasm");
    let s = run(wasmsign2()
        .arg("sign")
        .arg("-i")
        .arg(&module)
        .arg("-o")
        .arg(&signed)
        .arg("-k")
        .arg(&sk)
        .arg("-K")
        .arg(&pk));
    assert_eq!(s.code, 0, "{}", s.stderr);
    let no_key_id = d.join("signed-no-key-id.wasm");
    let s = run(wasmsign2().arg("sign").arg("-i").arg(&module).arg("-o").arg(&no_key_id).arg("-k").arg(&sk));
    assert_eq!(s.code, 0, "{}", s.stderr);

    let trust = d.join("trust");
    fs::create_dir_all(&trust).unwrap();
    let imported = trust.join("w.pub");
    let r = run(cmd("signer").arg("import-wasmsig-key").arg(&pk).arg("--out").arg(&imported).arg("--json"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let key_id = out["key_id"].as_str().unwrap().to_string();
    // The trust store id is the start of the key id wasmsign2 shows.
    let shown = wasmsign2_shown_key_id(&signed);
    assert_eq!(out["wasmsign2_key_id"], shown.as_str());
    assert_eq!(key_id, shown[..16].to_uppercase());
    let again = run(cmd("signer").arg("import-wasmsig-key").arg(&pk).arg("--out").arg(&imported));
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    fs::write(trust.join("trust.toml"), "threshold = 1\n").unwrap();

    for file in [&signed, &no_key_id] {
        let (code, json) = verify(&trust, file);
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["verified"], true);
        assert_eq!(json["format"], "wasmsig");
        assert_eq!(json["signers"], serde_json::json!([key_id]));
    }
    let human = run(cmd("signer").arg("verify").arg("--trust").arg(&trust).arg(&signed));
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("verified wasmsig module"), "{}", human.stdout);
    assert!(human.stdout.contains("carries no manifest"), "{}", human.stdout);

    // Not in the store: refused, naming wasmsign2's key id when there is one.
    keygen(d, "a");
    let elsewhere = trust_store(d, "elsewhere", &[&d.join("a.pub")], "threshold = 1\n");
    let (code, json) = verify(&elsewhere, &signed);
    assert_eq!((code, json["reason"].as_str()), (1, Some("untrusted_key")));
    assert!(json["message"].as_str().unwrap().contains(&shown), "{json}");
    assert_eq!(reason(&elsewhere, &no_key_id), (1, "untrusted_key".into()));

    // Revoked: refused even though another key could meet the threshold.
    let revoked = trust_store(
        d,
        "revoked",
        &[&imported, &d.join("a.pub")],
        &format!("threshold = 1\nrevoked = [\"{key_id}\"]\n"),
    );
    assert_eq!(reason(&revoked, &signed), (1, "revoked_key".into()));
    assert_eq!(reason(&revoked, &no_key_id), (1, "revoked_key".into()));

    // A changed byte in the module is a hash mismatch; in the signature, a bad signature.
    assert_eq!(reason(&trust, &flipped(d, "code.wasm", &signed, -1)), (1, "hash_mismatch".into()));
    let section_end = fs::metadata(&signed).unwrap().len() as isize - (hello_wasm().len() as isize - 8);
    assert_eq!(reason(&trust, &flipped(d, "sig.wasm", &signed, section_end - 10)), (1, "bad_signature".into()));
    // Whatever is flipped, wasmsign2 agrees that the file is no longer valid.
    for bad in ["code.wasm", "sig.wasm"] {
        assert_wasmsign2_refuses(&d.join(bad), &pk);
    }

    // Ed25519 is deterministic and we write wasmsign2's key id, so our signer
    // holding the same key writes exactly the bytes wasmsign2 wrote. (The
    // secret key exists only in this temporary directory.)
    let secret = fs::read(&sk).unwrap();
    assert_eq!((secret.len(), secret[0]), (65, 0x81), "wasmsign2's raw secret key format");
    let seed: [u8; 32] = secret[1..33].try_into().unwrap();
    let public = signer::wasmsig::import_public_key(&fs::read(&pk).unwrap()).unwrap();
    let same_key = signer::minisign::SecretKey::from_seed(&seed, public.key_id());
    assert_eq!(same_key.public_key(), public);
    let ours = signer::wasmsig::sign(&hello_wasm(), &same_key).unwrap();
    assert_eq!(ours, fs::read(&signed).unwrap(), "our signature section differs from wasmsign2's");
    // Signing a file wasmsign2 signed replaces its section rather than adding one.
    assert_eq!(signer::wasmsig::sign(&fs::read(&no_key_id).unwrap(), &same_key).unwrap(), ours);
}

#[test]
fn k_of_n_counts_signatures_from_both_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let module = d.join("hello.wasm");
    fs::write(&module, hello_wasm()).unwrap();
    keygen(d, "a");
    keygen(d, "c");
    let (ours, our_pk) = (d.join("ours.wasm"), d.join("a.wasmsign2.pk"));
    let r = export_wasmsig(&module, &d.join("a.key"), &ours, &["--public-key-out".as_ref(), our_pk.as_ref()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // wasmsign2 adds its signature to ours (same hash set), rather than replacing it.
    let (sk, pk) = (d.join("w.sk"), d.join("w.pk"));
    assert_eq!(run(wasmsign2().arg("keygen").arg("-k").arg(&sk).arg("-K").arg(&pk)).code, 0);
    let both = d.join("both.wasm");
    let s =
        run(wasmsign2().arg("sign").arg("-i").arg(&ours).arg("-o").arg(&both).arg("-k").arg(&sk).arg("-K").arg(&pk));
    assert_eq!(s.code, 0, "{}", s.stderr);
    for key in [&our_pk, &pk] {
        assert_eq!(run(wasmsign2().arg("verify").arg("-i").arg(&both).arg("-K").arg(key)).code, 0);
    }
    let w = d.join("w.pub");
    assert_eq!(run(cmd("signer").arg("import-wasmsig-key").arg(&pk).arg("--out").arg(&w)).code, 0);
    let trust = trust_store(d, "trust", &[&d.join("a.pub"), &w, &d.join("c.pub")], "threshold = 2\n");
    let (code, json) = verify(&trust, &both);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["signers"].as_array().unwrap().len(), 2);
    assert_eq!(reason(&trust, &ours), (1, "threshold_not_met".into()));
    // Re-exporting replaces both signatures with ours alone.
    let replaced = d.join("replaced.wasm");
    let r = export_wasmsig(&both, &d.join("c.key"), &replaced, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reason(&trust, &replaced), (1, "threshold_not_met".into()));
    assert_wasmsign2_refuses(&replaced, &pk);
}

#[test]
fn a_single_file_whose_module_carries_a_wasmsig_section_is_judged_by_its_manifest() {
    // Both formats in one file: the module (wasmsig section first) bundled,
    // signed and embedded (our section last). Our section decides, as it does
    // for the runtime; the wasmsig signature alone no longer covers the file.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "a");
    let module = d.join("hello.wasm");
    fs::write(&module, hello_wasm()).unwrap();
    let wasmsigned = d.join("hello.wasmsig.wasm");
    assert_eq!(export_wasmsig(&module, &d.join("a.key"), &wasmsigned, &[]).code, 0);
    let bundle = d.join("bundle");
    let r = run(cmd("signer")
        .args(["bundle", "--name", "hello", "--version", "1", "--expires", EXPIRES, "--wasm"])
        .arg(&wasmsigned)
        .arg("--out")
        .arg(&bundle));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(d.join("a.key")).arg(&bundle)).code, 0);
    let single = d.join("single.wasm");
    assert_eq!(run(cmd("signer").arg("embed").arg(&bundle).arg("--out").arg(&single)).code, 0);
    let trust = trust_store(d, "trust", &[&d.join("a.pub")], "threshold = 1\n");
    let (code, json) = verify(&trust, &single);
    assert_eq!((code, json["format"].as_str(), json["name"].as_str()), (0, Some("bundle"), Some("hello")), "{json}");
    assert_eq!(verify(&trust, &wasmsigned).1["format"], "wasmsig");
}
