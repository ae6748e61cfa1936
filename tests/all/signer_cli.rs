//! The `signer` binary: key generation, bundling, offline signing, verification,
//! and interoperability with the real `minisign` command line in both directions.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{cmd, hello_wasm, minisign, run};

const PASSWORD: &str = "correct horse battery staple";
const EXPIRES: &str = "2999-01-01T00:00:00Z";

/// Writes the hello module and makes an unsigned bundle of it at `dir/bundle`.
fn make_bundle(dir: &Path) -> std::path::PathBuf {
    let wasm = dir.join("hello.wasm");
    fs::write(&wasm, hello_wasm()).unwrap();
    let caps = dir.join("caps.toml");
    fs::write(&caps, "fuel = 200000000\nmemory_mib = 16\ntimeout_ms = 3000\nenv = [\"GREETING\"]\n[[preopen]]\nguest = \"/data\"\nmode = \"ro\"\n").unwrap();
    let bundle = dir.join("bundle");
    let r = run(cmd("signer")
        .args(["bundle", "--name", "hello", "--version", "7", "--version-label", "1.0.0", "--expires", EXPIRES])
        .arg("--wasm")
        .arg(&wasm)
        .arg("--caps")
        .arg(&caps)
        .arg("--out")
        .arg(&bundle));
    assert_eq!(r.code, 0, "{}", r.stderr);
    bundle
}

fn keygen_unencrypted(dir: &Path, name: &str) {
    let r = run(cmd("signer").args(["keygen", "--danger-unencrypted-for-tests", "--name", name]).arg("--out").arg(dir));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn trust_store(dir: &Path, pubs: &[&Path], threshold: usize) -> std::path::PathBuf {
    let trust = dir.join("trust");
    fs::create_dir_all(&trust).unwrap();
    for (i, p) in pubs.iter().enumerate() {
        fs::copy(p, trust.join(format!("k{i}.pub"))).unwrap();
    }
    fs::write(trust.join("trust.toml"), format!("threshold = {threshold}\n")).unwrap();
    trust
}

#[test]
fn manifest_is_canonical_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    let manifest = fs::read_to_string(bundle.join("manifest.json")).unwrap();
    insta::assert_snapshot!("manifest_json", manifest);
}

#[test]
fn encrypted_key_signs_and_minisign_cli_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    let r = run(cmd("signer")
        .args(["keygen", "--name", "cold", "--json"])
        .arg("--out")
        .arg(dir.path())
        .env("NIGHTCORE_KEY_PASSWORD", PASSWORD));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["encrypted"], true);
    let key_id = out["key_id"].as_str().unwrap().to_string();
    let key = dir.path().join("cold.key");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(fs::read_to_string(&key).unwrap().starts_with("untrusted comment: minisign encrypted secret key\n"));

    let wrong =
        run(cmd("signer").arg("sign").arg("--key").arg(&key).arg(&bundle).env("NIGHTCORE_KEY_PASSWORD", "nope"));
    assert_eq!(wrong.code, 2);
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.stderr);
    assert!(
        !bundle.join("signatures").join(format!("{key_id}.minisig")).exists(),
        "nothing written on a wrong password"
    );

    let signed =
        run(cmd("signer").arg("sign").arg("--key").arg(&key).arg(&bundle).env("NIGHTCORE_KEY_PASSWORD", PASSWORD));
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let sig = bundle.join("signatures").join(format!("{key_id}.minisig"));
    let v = run(minisign()
        .arg("-Vm")
        .arg(bundle.join("manifest.json"))
        .arg("-x")
        .arg(&sig)
        .arg("-p")
        .arg(dir.path().join("cold.pub")));
    assert_eq!(v.code, 0, "minisign CLI rejected our signature: {}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("Signature and comment signature verified"), "{}", v.stdout);

    // And minisign notices a tampered manifest, as we do.
    let manifest = bundle.join("manifest.json");
    let tampered = fs::read_to_string(&manifest).unwrap().replace("\"version\":7", "\"version\":8");
    fs::write(&manifest, tampered).unwrap();
    let v = run(minisign().arg("-Vm").arg(&manifest).arg("-x").arg(&sig).arg("-p").arg(dir.path().join("cold.pub")));
    // Refused as a bad signature, not for a missing file or a bad argument.
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(v.stderr.contains("Signature verification failed"), "{}", v.stderr);
}

#[test]
fn minisign_cli_signatures_and_keys_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    let (pk, sk) = (dir.path().join("m.pub"), dir.path().join("m.key"));
    let g = run(minisign().args(["-G", "-W"]).arg("-p").arg(&pk).arg("-s").arg(&sk));
    assert_eq!(g.code, 0, "{}", g.stderr);
    let manifest = bundle.join("manifest.json");
    fs::create_dir_all(bundle.join("signatures")).unwrap();
    let sig = bundle.join("signatures/minisign-cli.minisig");
    let s = run(minisign().args(["-S", "-W"]).arg("-s").arg(&sk).arg("-m").arg(&manifest).arg("-x").arg(&sig));
    assert_eq!(s.code, 0, "{}", s.stderr);

    // A key made by the minisign CLI signs with `signer sign` too (unencrypted -W key).
    let (pk2, sk2) = (dir.path().join("m2.pub"), dir.path().join("m2.key"));
    assert_eq!(run(minisign().args(["-G", "-W"]).arg("-p").arg(&pk2).arg("-s").arg(&sk2)).code, 0);
    let ours = run(cmd("signer").arg("sign").arg("--key").arg(&sk2).arg(&bundle));
    assert_eq!(ours.code, 0, "{}", ours.stderr);

    let trust = trust_store(dir.path(), &[&pk, &pk2], 2);
    let v = run(cmd("signer").arg("verify").arg("--json").arg("--trust").arg(&trust).arg(&bundle));
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    let out: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(out["verified"], true);
    assert_eq!(out["signers"].as_array().unwrap().len(), 2);
}

#[test]
fn minisign_cli_encrypted_key_unlocks_with_our_scrypt() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    let (pk, sk) = (dir.path().join("e.pub"), dir.path().join("e.key"));
    let mut g = minisign();
    g.arg("-G").arg("-p").arg(&pk).arg("-s").arg(&sk).stdin(std::process::Stdio::piped());
    let mut child = g.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let r = run(cmd("signer").arg("sign").arg("--key").arg(&sk).arg(&bundle).env("NIGHTCORE_KEY_PASSWORD", PASSWORD));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let trust = trust_store(dir.path(), &[&pk], 1);
    assert_eq!(run(cmd("signer").arg("verify").arg("--trust").arg(&trust).arg(&bundle)).code, 0);
}

#[test]
fn verify_exit_codes_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    keygen_unencrypted(dir.path(), "a");
    keygen_unencrypted(dir.path(), "b");
    let trust = trust_store(dir.path(), &[&dir.path().join("a.pub"), &dir.path().join("b.pub")], 2);
    let verify = || {
        let r = run(cmd("signer").arg("verify").arg("--json").arg("--trust").arg(&trust).arg(&bundle));
        let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or(serde_json::Value::Null);
        (r.code, json["reason"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(verify(), (1, "unsigned".into()));
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("a.key")).arg(&bundle)).code, 0);
    assert_eq!(verify(), (1, "threshold_not_met".into()));
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("b.key")).arg(&bundle)).code, 0);
    assert_eq!(verify(), (0, String::new()));
    let module = bundle.join("module.wasm");
    let mut bytes = fs::read(&module).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&module, bytes).unwrap();
    assert_eq!(verify(), (1, "hash_mismatch".into()));

    let human = run(cmd("signer").arg("verify").arg("--trust").arg(&trust).arg(&bundle));
    assert_eq!(human.code, 1);
    assert!(human.stdout.contains("verification failed (hash_mismatch): module hash mismatch"), "{}", human.stdout);

    let missing = run(cmd("signer").arg("verify").arg("--trust").arg(&trust).arg(dir.path().join("nope")));
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope is missing"), "{}", missing.stderr);
}

/// `signer verify --json` names each way a bundle fails with its own code:
/// the cases pipelines branch on, each built the way an attacker or a mistake
/// would produce it.
#[test]
fn verify_names_each_refusal_by_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["a", "host", "other"] {
        keygen_unencrypted(d, name);
    }
    let id = |name: &str| signer::keyfile::load_public_key(&d.join(format!("{name}.pub"))).unwrap().key_id();
    let secret = |name: &str| {
        signer::keyfile::load_secret_key(
            &d.join(format!("{name}.key")),
            signer::keyfile::PasswordSource::EnvironmentOnly,
        )
        .unwrap()
    };
    // `a` approves only tenant `billing`; `host` is a log key of the node.
    let trust = trust_store(d, &[&d.join("a.pub"), &d.join("host.pub")], 1);
    fs::write(
        trust.join("trust.toml"),
        format!(
            "threshold = 1\n[log_keys]\n\"{}\" = [\"nightcore.test/node\"]\n[tenants.billing]\nkeys = [\"{}\"]\n",
            id("host"),
            id("a")
        ),
    )
    .unwrap();
    let verify = |bundle: &Path| {
        let r = run(cmd("signer").arg("verify").arg("--json").arg("--trust").arg(&trust).arg(bundle));
        let json: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {:?} stderr {:?}", r.stdout, r.stderr));
        assert_eq!(json["verified"], r.code == 0, "{json}");
        (r.code, json["reason"].as_str().unwrap_or("").to_string())
    };
    // A fresh copy of the bundle `hello`, its manifest replaced by `manifest`
    // (if given) and signed by `signers`.
    let fresh = |name: &str, manifest: Option<&[u8]>, signers: &[&str]| {
        let bundle = make_bundle(&d.join(name));
        if let Some(bytes) = manifest {
            fs::write(bundle.join("manifest.json"), bytes).unwrap();
        }
        let manifest = fs::read(bundle.join("manifest.json")).unwrap();
        for signer in signers {
            signer::bundle::write_signature(&bundle, &secret(signer).sign(&manifest, "test").unwrap()).unwrap();
        }
        bundle
    };
    for name in ["a", "b", "c", "e", "f", "g", "h"] {
        fs::create_dir_all(d.join(name)).unwrap();
    }

    // Signed by a key scoped to another tenant.
    assert_eq!(verify(&fresh("a", None, &["a"])), (1, "key_not_allowed_for_tenant".into()));
    // Signed by the node's log key, which never approves modules.
    assert_eq!(verify(&fresh("b", None, &["host"])), (1, "log_key_cannot_approve".into()));
    // Signed by a key the trust store does not hold.
    assert_eq!(verify(&fresh("c", None, &["other"])), (1, "untrusted_key".into()));

    // Signed bytes that are not a manifest: the signature holds, the parse does not.
    let hello_manifest = fs::read_to_string(make_bundle(&d.join("e")).join("manifest.json")).unwrap();
    assert!(hello_manifest.contains("\"name\":\"hello\""), "{hello_manifest}");
    let billing = hello_manifest.replace("\"name\":\"hello\"", "\"name\":\"billing\"");
    let not_a_manifest = fresh("f", Some(b"{\"schema\":\"not a manifest\"}"), &["a"]);
    assert_eq!(verify(&not_a_manifest), (1, "malformed_manifest".into()));

    // A manifest for `billing`, correctly signed, whose module was then swapped:
    // for a longer one (size is checked first), then for one of the same size.
    let signed = fresh("g", Some(billing.as_bytes()), &["a"]);
    let module = signed.join("module.wasm");
    let original = fs::read(&module).unwrap();
    let mut longer = original.clone();
    longer.extend_from_slice(&signer::sections::custom_section("pad", b"x"));
    fs::write(&module, &longer).unwrap();
    assert_eq!(verify(&signed), (1, "size_mismatch".into()));
    let mut same_size = original.clone();
    *same_size.last_mut().unwrap() ^= 0x01;
    fs::write(&module, &same_size).unwrap();
    assert_eq!(verify(&signed), (1, "hash_mismatch".into()));
    fs::write(&module, &original).unwrap();
    assert_eq!(verify(&signed).0, 0, "the unmodified bundle verifies: the refusals above are the edits'");

    // A manifest over the size cap is refused before it is parsed or checked.
    let huge = fresh("h", None, &[]);
    fs::write(huge.join("manifest.json"), vec![b' '; signer::manifest::MAX_MANIFEST_BYTES + 1]).unwrap();
    assert_eq!(verify(&huge), (1, "file_too_large".into()));
}

#[test]
fn signing_refuses_a_swapped_module_and_open_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    keygen_unencrypted(dir.path(), "a");
    let key = dir.path().join("a.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(cmd("signer").arg("sign").arg("--key").arg(&key).arg(&bundle));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("readable by group or others (mode 644)"), "{}", r.stderr);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(bundle.join("module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let r = run(cmd("signer").arg("sign").arg("--key").arg(&key).arg(&bundle));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("refusing to sign: module.wasm has sha256"), "{}", r.stderr);
    assert!(!bundle.join("signatures").read_dir().unwrap().any(|_| true), "no signature written");
}

#[test]
fn bundle_refuses_non_wasm_and_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    let text = dir.path().join("not.wasm");
    fs::write(&text, "(module)").unwrap();
    let r = run(cmd("signer")
        .args(["bundle", "--name", "x", "--version", "1"])
        .arg("--wasm")
        .arg(&text)
        .arg("--out")
        .arg(dir.path().join("x")));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not a WebAssembly binary"), "{}", r.stderr);
    let r = run(cmd("signer")
        .args(["bundle", "--name", "x", "--version", "1"])
        .arg("--wasm")
        .arg(dir.path().join("hello.wasm"))
        .arg("--out")
        .arg(&bundle));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("exists already"), "{}", r.stderr);
}

#[test]
fn inspect_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    keygen_unencrypted(dir.path(), "a");
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("a.key")).arg(&bundle)).code, 0);
    let r = run(cmd("signer").arg("inspect").arg("--json").arg(&bundle));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    insta::assert_json_snapshot!("inspect_json", json, {
        ".signatures[].key_id" => "[key id]",
        ".signatures[].file" => "[key id].minisig",
        ".signatures[].trusted_comment" => "[timestamp]\tfile:manifest.json\tprehashed",
    });
}

#[test]
fn help_texts() {
    for sub in ["", "bundle", "inspect", "keygen", "sign", "verify"] {
        let mut c = cmd("signer");
        if !sub.is_empty() {
            c.arg(sub);
        }
        let r = run(c.arg("--help"));
        assert_eq!(r.code, 0);
        let name = if sub.is_empty() { "signer_help".to_string() } else { format!("signer_{sub}_help") };
        insta::assert_snapshot!(name, r.stdout);
    }
}

#[test]
fn single_file_round_trip_verifies_the_same_and_refuses_flipped_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(dir.path());
    keygen_unencrypted(dir.path(), "a");
    assert_eq!(run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("a.key")).arg(&bundle)).code, 0);
    let trust = trust_store(dir.path(), &[&dir.path().join("a.pub")], 1);
    let single = dir.path().join("hello.signed.wasm");
    let r = run(cmd("signer").arg("embed").arg(&bundle).arg("--out").arg(&single));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let verify = |path: &Path| {
        let r = run(cmd("signer").arg("verify").arg("--json").arg("--trust").arg(&trust).arg(path));
        let json: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}{}", r.stdout, r.stderr));
        (r.code, json["reason"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(verify(&single), (0, String::new()));
    let inspect = run(cmd("signer").arg("inspect").arg("--json").arg(&single));
    let shown: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(shown["module"]["matches_manifest"], true, "{shown}");

    let back = dir.path().join("back");
    assert_eq!(run(cmd("signer").arg("extract").arg(&single).arg("--out").arg(&back)).code, 0);
    let signature = fs::read_dir(bundle.join("signatures")).unwrap().next().unwrap().unwrap().file_name();
    let signature = format!("signatures/{}", signature.to_string_lossy());
    for file in ["module.wasm", "manifest.json", signature.as_str()] {
        assert_eq!(
            fs::read(back.join(file)).unwrap(),
            fs::read(bundle.join(file)).unwrap(),
            "{file} differs after the round trip"
        );
    }

    let bytes = fs::read(&single).unwrap();
    let module_len = fs::read(bundle.join("module.wasm")).unwrap().len();
    // A flipped byte in the code/data part is a hash mismatch.
    let mut code = bytes.clone();
    code[module_len - 3] ^= 0x01;
    let flipped = dir.path().join("flipped-code.wasm");
    fs::write(&flipped, &code).unwrap();
    assert_eq!(verify(&flipped), (1, "hash_mismatch".into()));
    // A flipped byte inside the signed manifest is a bad signature.
    let needle = b"\\\"version\\\":7";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap() + needle.len() - 1;
    let mut manifest = bytes.clone();
    manifest[at] = b'8';
    let flipped = dir.path().join("flipped-manifest.wasm");
    fs::write(&flipped, &manifest).unwrap();
    assert_eq!(verify(&flipped), (1, "bad_signature".into()));
    // A flipped byte in what no signature covers (the untrusted comment) is
    // still refused: the section must be exactly what `embed` writes.
    let needle = b"untrusted comment: ";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap() + needle.len() + 2;
    let mut comment = bytes.clone();
    comment[at] ^= 0x01;
    let flipped = dir.path().join("flipped-comment.wasm");
    fs::write(&flipped, &comment).unwrap();
    assert_eq!(verify(&flipped), (1, "malformed_bundle_section".into()));
    // A plain module is not a signed single file.
    let plain = dir.path().join("plain.wasm");
    fs::copy(bundle.join("module.wasm"), &plain).unwrap();
    assert_eq!(verify(&plain), (1, "no_bundle_section".into()));
    // Deployed as a directory holding only module.wasm, the same file
    // verifies, and a second bundle section is named the same way.
    let deployed = dir.path().join("deployed");
    fs::create_dir(&deployed).unwrap();
    fs::write(deployed.join("module.wasm"), &bytes).unwrap();
    assert_eq!(verify(&deployed), (0, String::new()));
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes[module_len..]);
    fs::write(&flipped, &twice).unwrap();
    assert_eq!(verify(&flipped), (1, "duplicate_bundle_section".into()));
    fs::write(deployed.join("module.wasm"), &twice).unwrap();
    assert_eq!(verify(&deployed), (1, "duplicate_bundle_section".into()));
    // Signing that directory would put a signature file beside a single file
    // (making it a bundle missing its manifest): refused, nothing written.
    fs::write(deployed.join("module.wasm"), &bytes).unwrap();
    let r = run(cmd("signer").arg("sign").arg("--key").arg(dir.path().join("a.key")).arg(&deployed));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("to sign a single-file module, unpack it with `signer extract`"), "{}", r.stderr);
    assert!(!deployed.join("signatures").exists());
    // A missing file is an I/O error, not a verdict.
    let r = run(cmd("signer").arg("verify").arg("--trust").arg(&trust).arg(dir.path().join("nope.wasm")));
    assert_eq!(r.code, 2, "{}", r.stderr);
}
