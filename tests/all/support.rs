//! Shared helpers: locating the binaries, running them, making throwaway keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of a workspace binary built into the same target directory as this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/all-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo xtask test` (or `cargo build --workspace --bins` before `cargo test`)",
        path.display()
    );
    path
}

/// A command for a workspace binary with a clean, predictable environment.
pub fn cmd(name: &str) -> Command {
    let mut c = Command::new(bin(name));
    // COLUMNS pins clap's help wrapping so that help snapshots do not depend on the caller.
    c.env_remove("NIGHTCORE_KEY_PASSWORD")
        .env_remove("RUST_BACKTRACE")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("NIGHTCORE_LOG", "error")
        .env("COLUMNS", "100")
        // Without a config file the binaries keep state in the standard
        // places; here those are inside the target directory, not the
        // home directory or /var/lib of whoever runs the tests.
        .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-state"))
        .env("XDG_CACHE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache"));
    c
}

/// Runs a command and returns its output, with stdout/stderr as strings.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(command: &mut Command) -> Run {
    let Output { status, stdout, stderr } = command.output().expect("spawn");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The minisign command line, installed by `cargo xtask test` and `.ci/run`.
pub fn minisign() -> Command {
    let found = Command::new("minisign").arg("-v").output().is_ok();
    assert!(
        found,
        "the minisign CLI is required for interop tests; `cargo xtask test` installs it (apt-get install minisign)"
    );
    Command::new("minisign")
}

/// A small real module compiled from WAT.
pub fn hello_wasm() -> Vec<u8> {
    wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hello\n")
            (func (export "_start")
              (i32.store (i32.const 0) (i32.const 16))
              (i32.store (i32.const 4) (i32.const 6))
              (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .expect("valid wat")
}

/// A signed bundle of the hello module for tenant `hello`, at
/// `dir/deploy/hello` (a deploy directory of one tenant), and a trust store
/// at `dir/trust` holding the throwaway key that signed it.
pub fn signed_hello(dir: &Path) -> (PathBuf, PathBuf) {
    use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
    let key = signer::minisign::SecretKey::generate();
    let module = hello_wasm();
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: "hello".into(),
        version: 1,
        version_label: "1.0.0".into(),
        module: ModuleDigest::of(&module),
        expires: "2999-01-01T00:00:00Z".into(),
        provenance: Provenance::default(),
        capabilities: Capabilities::default(),
    };
    let bundle = dir.join("deploy/hello");
    std::fs::create_dir_all(dir.join("deploy")).expect("deploy dir");
    signer::bundle::write_unsigned(&bundle, &module, &manifest).expect("write bundle");
    let signature = key.sign(&std::fs::read(bundle.join("manifest.json")).expect("manifest"), "test").expect("sign");
    signer::bundle::write_signature(&bundle, &signature).expect("write signature");
    let trust = dir.join("trust");
    signer::trust::write_trust_store(&trust, &[("ci", &key.public_key())], "threshold = 1\n").expect("trust store");
    (bundle, trust)
}
