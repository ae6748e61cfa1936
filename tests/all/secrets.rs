//! Secret keys never reach output: not in `signer keygen`'s human or `--json`
//! output, not in trace-level logs of the binaries that sign with the host
//! key, not in `Debug` of the key types.

use std::fs;
use std::path::Path;

use signer::keyfile::{PasswordSource, load_secret_key};
use signer::minisign::{LockedSecretKey, SecretKey};

use crate::support::{cmd, run, signed_hello};

/// The ways a leak would spell a secret key: its seed and keypair bytes in
/// hex (either case), base64 and Rust's byte-array `Debug`, and the encoded
/// line of its key file.
fn spellings(key_file: &Path) -> Vec<String> {
    use base64::Engine as _;
    let key = load_secret_key(key_file, PasswordSource::EnvironmentOnly).unwrap();
    let seed = key.signing_key().to_bytes();
    let pair = key.signing_key().to_keypair_bytes();
    let text = fs::read_to_string(key_file).unwrap();
    let encoded_line = text.lines().nth(1).unwrap().to_string();
    assert!(encoded_line.len() > 40, "the key file's second line is its encoded key: {text}");
    let mut out = vec![encoded_line];
    for bytes in [&seed[..], &pair[..]] {
        out.push(hex::encode(bytes));
        out.push(hex::encode_upper(bytes));
        out.push(base64::engine::general_purpose::STANDARD.encode(bytes));
        out.push(format!("{bytes:?}").trim_start_matches('[').chars().take(40).collect());
    }
    out
}

fn assert_no_secret(output: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        assert!(!output.contains(secret.as_str()), "{what} contains secret key material ({secret}): {output}");
    }
}

#[test]
fn keygen_prints_no_secret_in_either_form() {
    let dir = tempfile::tempdir().unwrap();
    for (name, json) in [("human", false), ("machine", true)] {
        let mut command = cmd("signer");
        command.args(["keygen", "--danger-unencrypted-for-tests", "--name", name]).arg("--out").arg(dir.path());
        if json {
            command.arg("--json");
        }
        let r = run(&mut command);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let secrets = spellings(&dir.path().join(format!("{name}.key")));
        // The output does say something about the key: its id and where it went.
        let said = format!("{}{}", r.stdout, r.stderr);
        assert!(said.contains(&format!("{name}.key")), "{said}");
        assert_no_secret(&r.stdout, &secrets, &format!("keygen {name} stdout"));
        assert_no_secret(&r.stderr, &secrets, &format!("keygen {name} stderr"));
    }
}

#[test]
fn the_key_types_debug_without_their_material() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(cmd("signer")
        .args(["keygen", "--danger-unencrypted-for-tests", "--name", "k"])
        .arg("--out")
        .arg(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = dir.path().join("k.key");
    let secrets = spellings(&path);
    let key: SecretKey = load_secret_key(&path, PasswordSource::EnvironmentOnly).unwrap();
    let locked = LockedSecretKey::from_file_bytes(&fs::read(&path).unwrap()).unwrap();
    for shown in [format!("{key:?}"), format!("{key:#?}"), format!("{locked:?}"), format!("{locked:#?}")] {
        assert_no_secret(&shown, &secrets, "Debug of a key");
    }
    assert_eq!(format!("{key:?}"), format!("SecretKey({})", key.key_id()));
}

#[test]
fn trace_logs_of_the_host_key_users_hold_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (bundle, trust) = signed_hello(d);
    let traced = |name: &str| {
        let mut c = cmd(name);
        c.env("NIGHTCORE_LOG", "trace").env("XDG_STATE_HOME", d.join("xdg-state"));
        c
    };
    let exec = run(traced("runtime")
        .arg("exec")
        .arg("--trust")
        .arg(d.join("trust"))
        .arg("--audit")
        .arg(d.join("audit.log"))
        .arg(&bundle));
    assert_eq!(exec.code, 0, "{}", exec.stderr);
    let scan = run(traced("guardian")
        .args(["scan", "--json", "--trust"])
        .arg(&trust)
        .arg("--state")
        .arg(d.join("state"))
        .arg(bundle.parent().unwrap()));
    assert_eq!(scan.code, 0, "{}{}", scan.stdout, scan.stderr);
    // The level really was lifted (the default here is errors only): the
    // logs say what was done.
    for output in [&exec, &scan] {
        assert!(["TRACE", "DEBUG", "INFO"].iter().any(|level| output.stderr.contains(level)), "{}", output.stderr);
    }

    for (host_key, user, output) in [
        (d.join("xdg-state/nightcore/host.key"), "runtime exec", &exec),
        (d.join("state/host.key"), "guardian scan", &scan),
    ] {
        let secrets = spellings(&host_key);
        assert_no_secret(&output.stdout, &secrets, &format!("{user} stdout"));
        assert_no_secret(&output.stderr, &secrets, &format!("{user} stderr"));
    }
}
