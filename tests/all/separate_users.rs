//! The reference deployment's users (ops/fleet.md, "Who may write what"),
//! with real uids: the guardian owns the state directory, the host key and
//! the node's audit log; `runtime exec` runs as a user of its own
//! (`RUNTIME_UID`) with a log, log key and compile cache of its own
//! (`[runtime]` in the config), reading only the guardian's signed state.
//!
//! The guardian side runs as the test's user. Switching to the runtime's uid
//! needs root (`setpriv`); as anyone else the same commands run as the
//! test's user, and only the assertions about what the file system lets the
//! runtime user do are left out.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, bin, run, signed_hello};

const RUNTIME_UID: u32 = 65533;
const NODE_ORIGIN: &str = "nightcore.test/node-1";
const RUNTIME_ORIGIN: &str = "nightcore.test/node-1/runtime";

fn is_root() -> bool {
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// `program args…` as the runtime's user (as root), else as ours.
fn as_runtime_user(program: &Path, args: &[&str], dir: &Path) -> Run {
    let mut command = if is_root() {
        let mut c = Command::new("setpriv");
        let id = RUNTIME_UID.to_string();
        c.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("NIGHTCORE_LOG", "error");
    run(&mut command)
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_runtime_user(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    set_mode(path, 0o700);
    if is_root() {
        std::os::unix::fs::chown(path, Some(RUNTIME_UID), Some(RUNTIME_UID)).unwrap();
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The node: config with a `[runtime]` table, one verified tenant in the
/// guardian's state, and the directories each user owns.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Others may pass through to what they are given below.
        set_mode(dir.path(), 0o755);
        let node = Self { dir };
        let (_bundle, _trust) = signed_hello(node.dir.path());
        std::fs::write(
            node.path("nightcore.toml"),
            format!(
                "trust_dir = \"trust\"\nstate_dir = \"state\"\naudit_log = \"log/audit.log\"\nhost_key = \"state/host.key\"\n\
                 origin = \"{NODE_ORIGIN}\"\ncache_dir = \"run/compile-cache\"\ncache_key = \"run/cache.key\"\n\
                 [runtime]\naudit_log = \"run-log/audit.log\"\nlog_key = \"run/log.key\"\norigin = \"{RUNTIME_ORIGIN}\"\n"
            ),
        )
        .unwrap();
        // The guardian verifies and admits hello: its state, host key and log.
        let scan = run(crate::support::cmd("guardian").current_dir(node.dir.path()).args([
            "scan",
            "--config",
            "nightcore.toml",
            "deploy",
        ]));
        assert_eq!(scan.code, 0, "{}{}", scan.stdout, scan.stderr);
        set_mode(&node.path("state"), 0o711);
        set_mode(&node.path("log"), 0o750);
        give_to_runtime_user(&node.path("run"));
        give_to_runtime_user(&node.path("run-log"));
        node
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn runtime(&self, args: &[&str]) -> Run {
        let mut all = vec!["exec", "--json", "--config", "nightcore.toml"];
        all.extend_from_slice(args);
        as_runtime_user(&bin("runtime"), &all, self.dir.path())
    }

    /// Binds the host key to the node's origin and the runtime's log key to
    /// the runtime's origin, beside the maintainer's key `signed_hello` made.
    fn bind_log_keys(&self) {
        let host = signer::keyfile::load_public_key(&self.path("state/host.pub")).unwrap();
        let runtime = signer::keyfile::load_public_key(&self.path("run/log.pub")).unwrap();
        let maintainer = signer::keyfile::load_public_key(&self.path("trust/ci.pub")).unwrap();
        std::fs::remove_dir_all(self.path("trust")).unwrap();
        signer::trust::write_trust_store(
            &self.path("trust"),
            &[("ci", &maintainer), ("host", &host), ("runtime", &runtime)],
            &format!(
                "threshold = 1\n[log_keys]\n\"{}\" = [\"{NODE_ORIGIN}\"]\n\"{}\" = [\"{RUNTIME_ORIGIN}\"]\n",
                host.key_id(),
                runtime.key_id()
            ),
        )
        .unwrap();
    }
}

#[test]
fn the_runtime_runs_recorded_as_a_user_of_its_own_with_a_log_and_key_of_its_own() {
    let node = Node::new();
    let node_log = std::fs::read(node.path("log/audit.log")).unwrap();
    let node_checkpoint = std::fs::read(node.path("log/audit.log.checkpoint")).unwrap();
    if is_root() {
        // The premise: this user can read neither the host key nor the node's log.
        let cat = Path::new("/bin/cat");
        for secret in ["state/host.key", "log/audit.log"] {
            let read = as_runtime_user(cat, &[secret], node.dir.path());
            assert_eq!(read.code, 1, "the runtime user read {secret}");
            assert!(read.stderr.contains("Permission denied"), "{}", read.stderr);
        }
    }

    let ran = node.runtime(&["--receipt", "run-log/hello.receipt.json", "deploy/hello"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(json["stdout"], "hello\n", "{json}");
    assert_eq!(json["verification"], "verified", "{json}");

    // Recorded in its own log, under its own origin, with a key it made for itself.
    let log = std::fs::read_to_string(node.path("run-log/audit.log")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["run.started", "run.finished"]);
    let checkpoint = std::fs::read_to_string(node.path("run-log/audit.log.checkpoint")).unwrap();
    assert_eq!(checkpoint.lines().next(), Some(RUNTIME_ORIGIN), "{checkpoint}");
    let key = std::fs::metadata(node.path("run/log.key")).unwrap();
    assert_eq!(key.mode() & 0o777, 0o600);
    if is_root() {
        assert_eq!(key.uid(), RUNTIME_UID);
    }
    // The node's log is not touched.
    assert_eq!(std::fs::read(node.path("log/audit.log")).unwrap(), node_log);
    assert_eq!(std::fs::read(node.path("log/audit.log.checkpoint")).unwrap(), node_checkpoint);

    // Anyone with the trust store verifies both logs, each under its own origin.
    node.bind_log_keys();
    for log in ["run-log/audit.log", "log/audit.log"] {
        let verify = run(crate::support::cmd("guardian").current_dir(node.dir.path()).args([
            "audit",
            "verify",
            "--config",
            "nightcore.toml",
            log,
        ]));
        assert_eq!(verify.code, 0, "{log}: {}{}", verify.stdout, verify.stderr);
        assert!(verify.stdout.contains("intact"), "{}", verify.stdout);
    }
    // The receipt is signed by the runtime's key under the runtime's origin,
    // and verifies against the trust store that binds them.
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.path("run-log/hello.receipt.json")).unwrap()).unwrap();
    assert_eq!(receipt["receipt"]["origin"], RUNTIME_ORIGIN, "{receipt}");
    let verified = run(crate::support::cmd("runtime").current_dir(node.dir.path()).args([
        "verify-receipt",
        "run-log/hello.receipt.json",
        "--trust",
        "trust",
    ]));
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    // With the keys bound, runs go on as before (the state is checked
    // against the key bound to the node's origin).
    let again = node.runtime(&["deploy/hello"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

/// The runtime's key is bound to the runtime's origin alone: a guardian
/// state it signs, say with every floor removed, is not the guardian's.
#[test]
fn a_guardian_state_signed_with_the_runtime_key_is_refused() {
    let node = Node::new();
    let ran = node.runtime(&["deploy/hello"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    node.bind_log_keys();

    let trust = signer::trust::TrustStore::load(&node.path("trust")).unwrap();
    let verifier = guardian::state::StateVerifier::for_node(Some(&trust), NODE_ORIGIN, &node.path("state/host.key"));
    assert!(guardian::state::read_tenants(&node.path("state"), &verifier).unwrap().tenants.contains_key("hello"));
    // The forgery: a well-formed state without hello's floor.
    let state = guardian::state::State::default();
    let runtime_key = signer::keyfile::load_or_create_host_key(&node.path("run/log.key")).unwrap();
    let forged = node.path("run/forged-state");
    guardian::state::StateDir::open_locked(&forged, runtime_key).unwrap().save_tenants(&state).unwrap();
    if is_root() {
        for entry in std::fs::read_dir(&forged).unwrap() {
            std::os::unix::fs::chown(entry.unwrap().path(), Some(RUNTIME_UID), Some(RUNTIME_UID)).unwrap();
        }
        std::os::unix::fs::chown(&forged, Some(RUNTIME_UID), Some(RUNTIME_UID)).unwrap();
    }

    let refused = node.runtime(&["--state", s(&forged), "deploy/hello"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("cannot check bundles against the guardian state"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("a log key the trust store binds to origin {NODE_ORIGIN}")),
        "{}",
        refused.stderr
    );
    match guardian::state::read_tenants(&forged, &verifier) {
        Err(e) => assert_eq!(e.reason_code(), "state_signer_untrusted", "{e}"),
        Ok(_) => panic!("a state signed by the runtime's key was accepted"),
    }
}

/// Without a `[runtime]` table the runtime appends to the node's log, which
/// its user may not write: the run is refused before anything runs.
#[test]
fn without_a_runtime_log_of_its_own_the_runtime_user_cannot_record_and_does_not_run() {
    if !is_root() {
        // Only another uid shows the node's log is out of the runtime's reach.
        eprintln!("not root: the runtime cannot be run as another user; nothing to check");
        return;
    }
    let node = Node::new();
    let config = std::fs::read_to_string(node.path("nightcore.toml")).unwrap();
    let shared = config.split("[runtime]").next().unwrap().to_string();
    std::fs::write(node.path("shared.toml"), shared).unwrap();
    let refused =
        as_runtime_user(&bin("runtime"), &["exec", "--config", "shared.toml", "deploy/hello"], node.dir.path());
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("cannot open the audit log"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Permission denied"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "the guest never ran: {}", refused.stdout);
}
