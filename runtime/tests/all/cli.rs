//! The `runtime` binary end to end: signed bundles in a temporary directory,
//! exit codes, `--json` shapes, refusals with their reasons, the audit log and
//! `--all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use signer::manifest::{Capabilities, Preopen, PreopenMode};

use crate::support::{Signer, exit_module, fixture, single_file, unsigned_bundle};

const EXE: &str = env!("CARGO_BIN_EXE_runtime");

/// A temporary node: trust store, signer, and a working directory in which
/// the binary runs, with its standard state and cache directories (the XDG
/// ones) inside it.
struct Node {
    dir: tempfile::TempDir,
    signer: Signer,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(dir.path());
        Self { dir, signer }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bundle(&self, name: &str, tenant: &str, module: &[u8], caps: Capabilities) -> PathBuf {
        self.signer.bundle(&self.path(name), tenant, module, caps)
    }

    fn exec(&self, args: &[&str]) -> Output {
        let trust = self.signer.trust_dir.to_str().unwrap().to_string();
        let mut command = Command::new(EXE);
        command
            .current_dir(self.dir.path())
            .env_remove("NIGHTCORE_LOG")
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env("XDG_CACHE_HOME", self.path("xdg-cache"))
            .arg("exec")
            .arg("--trust")
            .arg(trust);
        command.args(args);
        command.output().unwrap()
    }

    fn exec_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.exec(&all);
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap(), json)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_documents_the_exit_codes() {
    for args in [&["--help"][..], &["exec", "--help"][..]] {
        let output = Command::new(EXE).args(args).output().unwrap();
        // Help text is wrapped to the terminal width; compare with single spaces.
        let text = String::from_utf8(output.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in ["124", "125", "134", "2 for a usage or I/O error"] {
            assert!(text.contains(needle), "{args:?} lacks {needle}: {text}");
        }
    }
}

#[test]
fn a_signed_hello_runs_and_prints() {
    let node = Node::new();
    let bundle = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let output = node.exec(&[s(&bundle)]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout, b"hello\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("runtime: hello v1 exited with status 0"), "{stderr}");

    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_eq!(code, 0);
    assert_eq!(json["status"], "ran");
    assert_eq!(json["tenant"], "hello");
    assert_eq!(json["verification"], "verified");
    assert_eq!(json["signers"].as_array().unwrap().len(), 1);
    assert_eq!(json["outcome"]["kind"], "exited");
    assert_eq!(json["outcome"]["code"], 0);
    assert_eq!(json["stdout"], "hello\n");
    assert_eq!(json["exit_code"], 0);
    // The first run compiled and stored; this one loads the artifact.
    assert_eq!(json["cache"], "hit");
}

#[test]
fn the_guest_exit_status_passes_through() {
    let node = Node::new();
    // 2, 124 and 125 are also the runtime's own codes (usage or I/O error,
    // limit, refusal): a guest that exits with one of them still ran, and
    // `--json` is what tells them apart. (WASI allows statuses below 126; a
    // guest asking for more traps, as under `wasmtime run`.)
    for code in [1, 2, 7, 42, 124, 125] {
        let bundle = node.bundle(&format!("exit{code}"), "exits", &exit_module(code), Capabilities::default());
        let (status, json) = node.exec_json(&[s(&bundle)]);
        assert_eq!(status, code, "{json}");
        assert_eq!(json["status"], "ran", "{json}");
        assert_eq!(json["refusal"], Value::Null, "{json}");
        assert_eq!(json["outcome"]["kind"], "exited", "{json}");
        assert_eq!(json["outcome"]["code"], code, "{json}");
        assert_eq!(json["exit_code"], code, "{json}");
        // Without --json the exit status is the guest's too.
        assert_eq!(node.exec(&[s(&bundle)]).status.code(), Some(code));
    }
}

#[test]
fn limits_exit_124_and_traps_134() {
    let node = Node::new();
    let caps = Capabilities { fuel: 2_000_000, ..Capabilities::default() };
    let bundle = node.bundle("loop", "spinner", &fixture("loop"), caps);
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_eq!(code, 124);
    assert_eq!(json["outcome"]["kind"], "fuel_exhausted");
    assert_eq!(json["fuel"]["consumed"], 2_000_000);

    let caps = Capabilities { fuel: 1 << 40, timeout_ms: 50, ..Capabilities::default() };
    let bundle = node.bundle("slow", "spinner", &fixture("loop"), caps);
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_eq!(code, 124);
    assert_eq!(json["outcome"]["kind"], "timeout");
    assert_eq!(json["fuel"]["consumed"], Value::Null);

    let caps = Capabilities { max_output_bytes: 100, ..Capabilities::default() };
    let bundle = node.bundle("flood", "flood", &fixture("flood"), caps);
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_eq!(code, 124);
    assert_eq!(json["outcome"]["kind"], "output_limit");
    assert_eq!(json["stdout"].as_str().unwrap().len(), 100);
    assert_eq!(json["stdout_truncated"], true);

    let bundle = node.bundle("trap", "trapper", &fixture("unreachable"), Capabilities::default());
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_eq!(code, 134);
    assert_eq!(json["outcome"]["kind"], "trap");
    assert_eq!(json["outcome"]["trap_kind"], "unreachable_code_reached");
}

fn assert_refused(json: &Value, code: i32, stage: &str, reason: &str, message_part: &str) {
    assert_eq!(code, 125, "{json}");
    assert_eq!(json["status"], "refused", "{json}");
    assert_eq!(json["refusal"]["stage"], stage, "{json}");
    assert_eq!(json["refusal"]["reason"], reason, "{json}");
    let message = json["refusal"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
}

#[test]
fn unsigned_bundles_are_refused_unless_danger_is_named() {
    let node = Node::new();
    let bundle = unsigned_bundle(&node.path("unsigned"), "hello", &fixture("hello"), Capabilities::default());
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "verify", "unsigned", "bundle is unsigned");

    let audit = node.path("audit.log");
    let (code, json) = node.exec_json(&["--danger-allow-unsigned", "--audit", s(&audit), s(&bundle)]);
    assert_eq!(code, 0);
    assert_eq!(json["verification"], "danger_unverified");
    assert_eq!(json["cache"], "bypassed");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains(r#""verification":"danger_unverified""#), "{log}");
}

#[test]
fn a_tampered_module_is_refused() {
    let node = Node::new();
    let bundle = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let mut module = std::fs::read(bundle.join("module.wasm")).unwrap();
    let last = module.len() - 1;
    module[last] ^= 1;
    std::fs::write(bundle.join("module.wasm"), &module).unwrap();
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "verify", "hash_mismatch", "module hash mismatch");
}

#[test]
fn validation_refusals_name_the_problem() {
    let node = Node::new();
    let module = wat::parse_str(r#"(module (import "env" "system" (func)) (func (export "_start")))"#).unwrap();
    let bundle = node.bundle("foreign", "foreign", &module, Capabilities::default());
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "validate", "disallowed_import", "import env::system is not allowed");

    let bundle = node.bundle("fs", "fs", &fixture("fs_probe"), Capabilities::default());
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "validate", "disallowed_import", "wasi_snapshot_preview1::path_open");

    let bundle = node.bundle("garbage", "garbage", b"\0asm\x01\0\0\0\x0a\xff", Capabilities::default());
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "validate", "malformed_module", "module is not valid WebAssembly");
}

fn data_caps(mode: PreopenMode) -> Capabilities {
    Capabilities { preopen: vec![Preopen { guest: "/data".into(), mode }], ..Capabilities::default() }
}

#[test]
fn preopens_must_be_mapped_and_requested() {
    let node = Node::new();
    let data = node.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "input\n").unwrap();
    let bundle = node.bundle("reader", "reader", &fixture("fs_probe"), data_caps(PreopenMode::ReadOnly));

    let (code, json) = node.exec_json(&[s(&bundle), "--", "r", "in.txt"]);
    assert_refused(&json, code, "policy", "unmapped_preopen", "manifest requests preopen /data");

    let mapping = format!("/data={}", s(&data));
    let (code, json) = node.exec_json(&["--dir", &mapping, s(&bundle), "--", "r", "in.txt"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["stdout"], "input\n");
    assert_eq!(json["policy"]["preopens"]["/data"]["mode"], "ro");

    let extra = format!("/other={}", s(&data));
    let (code, json) = node.exec_json(&["--dir", &mapping, "--dir", &extra, s(&bundle), "--", "r", "in.txt"]);
    assert_refused(&json, code, "policy", "unrequested_mapping", "/other");
}

#[test]
fn host_policies_only_tighten() {
    let node = Node::new();
    let bundle =
        node.bundle("hello", "hello", &fixture("hello"), Capabilities { fuel: 1000, ..Capabilities::default() });
    let policy = node.path("policy.toml");
    std::fs::write(&policy, "fuel = 5000\n").unwrap();
    let (code, json) = node.exec_json(&["--policy", s(&policy), s(&bundle)]);
    assert_refused(&json, code, "policy", "policy_widening", "fuel = 5000 would widen the signed fuel = 1000");

    let (code, json) = node.exec_json(&["--env", "PATH=/bin", s(&bundle)]);
    assert_refused(&json, code, "policy", "env_not_requested", "PATH");

    // A config file's tenant policy applies to the tenant the manifest names.
    let spinner =
        node.bundle("loop", "spinner", &fixture("loop"), Capabilities { fuel: 1000, ..Capabilities::default() });
    let config = node.path("nightcore.toml");
    std::fs::write(&config, "[tenants.spinner]\nfuel = 10\n[tenants.other]\nfuel = 1\n").unwrap();
    let (code, json) = node.exec_json(&["--config", s(&config), s(&spinner)]);
    assert_eq!(code, 124, "{json}");
    assert_eq!(json["policy"]["fuel"], 10);
    assert_eq!(json["fuel"]["consumed"], 10);
    assert_eq!(json["outcome"]["kind"], "fuel_exhausted");
}

#[test]
fn runs_and_refusals_are_audited() {
    let node = Node::new();
    let audit = node.path("state/audit.log");
    std::fs::create_dir_all(audit.parent().unwrap()).unwrap();
    let good = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let bad = unsigned_bundle(&node.path("unsigned"), "hello", &fixture("hello"), Capabilities::default());
    assert_eq!(node.exec(&["--audit", s(&audit), s(&good)]).status.code(), Some(0));
    assert_eq!(node.exec(&["--audit", s(&audit), s(&bad)]).status.code(), Some(125));
    let log = std::fs::read_to_string(&audit).unwrap();
    let entries: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 3);
    // Recorded before the guest could have any effect, then how it ended.
    assert_eq!(entries[0]["kind"], "run.started");
    assert_eq!(entries[0]["data"]["tenant"], "hello");
    assert_eq!(entries[0]["data"]["verification"], "verified");
    assert_eq!(entries[1]["kind"], "run.finished");
    assert_eq!(entries[1]["data"]["module_sha256"], entries[0]["data"]["module_sha256"]);
    assert_eq!(entries[1]["data"]["outcome"], "exited");
    assert_eq!(entries[1]["data"]["exit_code"], 0);
    assert_eq!(entries[2]["kind"], "run.refused");
    assert_eq!(entries[2]["data"]["reason"], "unsigned");
    assert_eq!(entries[2]["data"]["stage"], "verify");
}

#[test]
fn no_guest_runs_when_the_log_it_would_be_recorded_in_is_tampered() {
    // With one byte of the log's last entry changed (the chain head every
    // writer checks), the run is refused before the guest starts (it would
    // write a file), not reported unrecorded afterwards.
    let node = Node::new();
    let audit = node.path("state/audit.log");
    let out = node.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let writer = node.bundle("w", "writer", &fixture("fs_probe"), data_caps(PreopenMode::ReadWrite));
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    assert_eq!(node.exec(&["--audit", s(&audit), s(&hello)]).status.code(), Some(0));
    let text = std::fs::read_to_string(&audit).unwrap();
    let last = text.trim_end().rfind('\n').map_or(0, |i| i + 1);
    let edited = format!("{}{}", &text[..last], text[last..].replacen("\"exited\"", "\"exitex\"", 1));
    assert_ne!(edited, text);
    std::fs::write(&audit, edited).unwrap();
    let data = format!("/data={}", s(&out));
    let output = node.exec(&["--audit", s(&audit), "--dir", &data, s(&writer), "--", "w", "proof.txt"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    // The head is checked when the log is opened, before anything runs.
    assert!(stderr.contains("cannot open the audit log") && stderr.contains("refusing to extend"), "{stderr}");
    assert!(stderr.contains("entry edited"), "{stderr}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "the guest never ran");
}

/// A writer reads O(log n) of the log, so an entry edited in place further
/// back does not stop a run; but the run is recorded under a checkpoint
/// whose root comes from the Merkle state the previous checkpoint vouched
/// for, so it commits to the original entry, and `verify` names the edit.
#[test]
fn a_run_on_a_log_edited_further_back_is_recorded_under_a_checkpoint_of_the_original() {
    let node = Node::new();
    let audit = node.path("state/audit.log");
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    assert_eq!(node.exec(&["--audit", s(&audit), s(&hello)]).status.code(), Some(0));
    let original = std::fs::read_to_string(&audit).unwrap();
    // Same length, so every offset in the index still holds.
    let edited = original.replacen("\"tenant\":\"hello\"", "\"tenant\":\"hellp\"", 1);
    std::fs::write(&audit, &edited).unwrap();
    assert_eq!(node.exec(&["--audit", s(&audit), s(&hello)]).status.code(), Some(0));
    let lines: Vec<String> = std::fs::read_to_string(&audit).unwrap().lines().map(str::to_string).collect();
    let mut honest: Vec<String> = original.lines().map(str::to_string).collect();
    honest.extend(lines[honest.len()..].iter().cloned());
    let leaves: Vec<_> = honest.iter().map(|l| audit::merkle::leaf_hash(l.as_bytes())).collect();
    let checkpoint = audit::load_checkpoint(&audit::default_checkpoint_path(&audit)).unwrap().checkpoint;
    assert_eq!((checkpoint.size, checkpoint.root), (leaves.len() as u64, audit::merkle::root(&leaves)));
    let host = signer::keyfile::load_or_create_host_key(&node.path("xdg-state/nightcore/host.key")).unwrap();
    let key = *host.public_key().verifying_key();
    match audit::verify_log(&audit, &audit::default_checkpoint_path(&audit), &key) {
        Ok(audit::VerifyReport::Tampered(t)) => assert_eq!(t.first_bad_seq, Some(0), "{t}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_planted_cache_entry_runs_the_verified_code_and_is_recorded() {
    // The attack of the old unkeyed cache: compile another module, put its
    // entry under the verified module's key. Now the tag does not verify.
    let node = Node::new();
    let audit = node.path("state/audit.log");
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let spinner = node.bundle("spinner", "spinner", &exit_module(3), Capabilities::default());
    assert_eq!(node.exec(&[s(&hello)]).status.code(), Some(0));
    let cache = node.path("xdg-cache/nightcore/compile-cache");
    let before: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(node.exec(&[s(&spinner)]).status.code(), Some(3));
    let hello_entry = before.iter().find(|p| p.extension().is_some_and(|e| e == "cwasm")).unwrap();
    let spinner_entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !before.contains(p) && p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    std::fs::copy(&spinner_entry, hello_entry).unwrap();

    let (code, json) = node.exec_json(&["--audit", s(&audit), s(&hello)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["stdout"], "hello\n", "hello's own code ran");
    assert_eq!(json["cache"], "rebuilt");
    let log = std::fs::read_to_string(&audit).unwrap();
    let entries: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["cache.rejected", "run.started", "run.finished"]);
    assert_eq!(entries[0]["data"]["reason"], "tag_mismatch");
    assert_eq!(entries[0]["data"]["tenant"], "hello");
    let moved = entries[0]["data"]["moved_to"].as_str().unwrap();
    assert_eq!(std::fs::read(moved).unwrap(), std::fs::read(&spinner_entry).unwrap(), "kept as evidence");
}

#[test]
fn a_writable_cache_directory_is_refused_not_used() {
    let node = Node::new();
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let shared = node.path("shared-cache");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let output = node.exec(&["--cache-dir", s(&shared), s(&hello)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot use the compile cache") && stderr.contains("group or others may write"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

/// Guardian state naming `tenant` at `version` (also its floor), as the
/// guardian of `node` writes it (signed by its host key), for a bundle whose
/// manifest hash is `manifest_sha256`.
fn guardian_state(node: &Node, dir: &Path, tenant: &str, version: u64, manifest_sha256: &str) {
    let key = signer::keyfile::load_or_create_host_key(&node.path("xdg-state/nightcore/host.key")).unwrap();
    guardian_state_signed_by(key, dir, tenant, version, manifest_sha256);
}

fn guardian_state_signed_by(
    key: signer::minisign::SecretKey,
    dir: &Path,
    tenant: &str,
    version: u64,
    manifest_sha256: &str,
) {
    let state = guardian::state::StateDir::open_locked(dir, key).unwrap();
    let mut files = std::collections::BTreeMap::new();
    files.insert("module.wasm".to_string(), guardian::digest::FileRecord::of(b"m"));
    let record = guardian::state::TenantRecord {
        version,
        version_label: format!("{version}.0"),
        floor: version,
        digest: guardian::digest::bundle_digest(&files),
        manifest_sha256: manifest_sha256.into(),
        module_sha256: "0".repeat(64),
        files,
        signers: Vec::new(),
        accepted_at: "2026-12-01T00:00:00Z".into(),
        previous: Vec::new(),
    };
    let mut all = guardian::state::State::default();
    all.tenants.insert(tenant.into(), record);
    state.save_tenants(&all).unwrap();
}

#[test]
fn an_old_signed_version_is_refused_below_the_rollback_floor() {
    let node = Node::new();
    let old = node.signer.bundle_version(&node.path("hello-v1"), "hello", 1, &fixture("hello"));
    let current = node.signer.bundle_version(&node.path("hello-v2"), "hello", 2, &fixture("hello"));
    let state = node.path("guardian-state");
    let (_, v2) = node.exec_json(&[s(&current)]);
    guardian_state(&node, &state, "hello", 2, v2["manifest_sha256"].as_str().unwrap());

    let (code, json) = node.exec_json(&["--state", s(&state), s(&old)]);
    assert_refused(&json, code, "verify", "below_floor", "hello v1 is below the rollback floor v2");
    // The same through a config file's state_dir, and for --all.
    let config = node.path("nightcore.toml");
    // The same node: the guardian's state, and the host key that signed it.
    std::fs::write(&config, "state_dir = \"guardian-state\"\nhost_key = \"xdg-state/nightcore/host.key\"\n").unwrap();
    let (code, json) = node.exec_json(&["--config", s(&config), s(&old)]);
    assert_refused(&json, code, "verify", "below_floor", "below the rollback floor");
    let deploy = node.path("deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    std::fs::rename(&old, deploy.join("hello")).unwrap();
    let (code, json) = node.exec_json(&["--config", s(&config), "--all", s(&deploy)]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["tenants"][0]["refusal"]["reason"], "below_floor");
    // The accepted version runs; another v2 with other bytes does not.
    let (code, json) = node.exec_json(&["--state", s(&state), s(&current)]);
    assert_eq!(code, 0, "{json}");
    let other = node.signer.bundle_version(&node.path("hello-v2b"), "hello", 2, &exit_module(0));
    let (code, json) = node.exec_json(&["--state", s(&state), s(&other)]);
    assert_refused(&json, code, "verify", "same_version_different_bytes", "is not the v2 accepted on this node");
}

/// `guardian retire` leaves a tombstone: no version up to its floor runs,
/// whether or not it is the one that was in service; a newer one is not
/// held back by the runtime (the guardian decides whether to admit it).
#[test]
fn a_retired_tenant_runs_at_no_version_up_to_its_floor() {
    let node = Node::new();
    let state = node.path("guardian-state");
    let key = signer::keyfile::load_or_create_host_key(&node.path("xdg-state/nightcore/host.key")).unwrap();
    let dir = guardian::state::StateDir::open_locked(&state, key).unwrap();
    let mut all = guardian::state::State::default();
    all.retired.insert(
        "hello".into(),
        guardian::state::RetiredTenant { version: 2, floor: 3, retired_at: "2026-12-01T00:00:00Z".into() },
    );
    dir.save_tenants(&all).unwrap();
    drop(dir);
    for version in [1, 2, 3] {
        let bundle =
            node.signer.bundle_version(&node.path(&format!("hello-v{version}")), "hello", version, &fixture("hello"));
        let (code, json) = node.exec_json(&["--state", s(&state), s(&bundle)]);
        let message = format!("hello was retired on this node at v3: v{version} may not run");
        assert_refused(&json, code, "verify", "tenant_retired", &message);
    }
    let newer = node.signer.bundle_version(&node.path("hello-v4"), "hello", 4, &fixture("hello"));
    let (code, json) = node.exec_json(&["--state", s(&state), s(&newer)]);
    assert_eq!(code, 0, "{json}");
}

#[test]
fn an_edited_guardian_state_stops_runs_instead_of_lowering_floors() {
    let node = Node::new();
    let hello = node.signer.bundle_version(&node.path("hello"), "hello", 1, &fixture("hello"));
    let state = node.path("guardian-state");
    guardian_state(&node, &state, "hello", 2, &"a".repeat(64));
    let path = state.join("state.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"floor\":2", "\"floor\":1");
    std::fs::write(&path, text).unwrap();
    let output = node.exec(&["--state", s(&state), s(&hello)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot check bundles against the guardian state"), "{stderr}");
    assert!(stderr.contains("its hash is"), "{stderr}");
    // A well-formed state with a lower floor, signed by a key of the
    // attacker's own: refused by its signer.
    std::fs::remove_dir_all(&state).unwrap();
    guardian_state_signed_by(signer::minisign::SecretKey::generate(), &state, "hello", 1, &"a".repeat(64));
    let output = node.exec(&["--state", s(&state), s(&hello)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is signed by key") && stderr.contains("which is not the host key"), "{stderr}");
}

#[test]
fn a_tenant_directory_whose_name_is_not_utf8_is_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let node = Node::new();
    let deploy = node.path("deploy");
    let odd = deploy.join(std::ffi::OsStr::from_bytes(b"hel\xfflo"));
    node.signer.bundle(&odd, "hello", &fixture("hello"), Capabilities::default());
    let (code, json) = node.exec_json(&["--all", s(&deploy)]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["tenants"][0]["refusal"]["reason"], "tenant_name_not_utf8");
    assert_eq!(json["tenants"][0]["refusal"]["stage"], "read");
    assert!(json["tenants"][0]["refusal"]["message"].as_str().unwrap().contains("hel\\xfflo"), "{json}");
}

#[test]
fn without_a_config_the_host_key_and_state_stay_out_of_the_log_dir_and_the_cwd() {
    let node = Node::new();
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let shipped = node.path("shipped");
    std::fs::create_dir_all(&shipped).unwrap();
    let log = shipped.join("audit.log");
    assert_eq!(node.exec(&["--audit", s(&log), s(&hello)]).status.code(), Some(0));
    let mut beside: Vec<String> =
        std::fs::read_dir(&shipped).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    beside.sort();
    assert_eq!(
        beside,
        ["audit.log", "audit.log.checkpoint", "audit.log.hashes", "audit.log.index"],
        "no secret key beside the log (only the log, its checkpoint and its Merkle state)"
    );
    assert!(node.path("xdg-state/nightcore/host.key").is_file());
    assert!(!node.path("state").exists(), "nothing in the working directory");
    // The receipt is signed with that same key, which checks out as this
    // node's log key.
    let receipt = node.path("receipt.json");
    assert_eq!(node.exec(&["--receipt", s(&receipt), s(&hello)]).status.code(), Some(0));
    let host = signer::keyfile::load_or_create_host_key(&node.path("xdg-state/nightcore/host.key")).unwrap();
    let trust = signer::trust::TrustStore::from_keys_and_toml(
        vec![host.public_key(), node.signer.key.public_key()],
        &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"{}\"]\n", host.key_id(), signer::config::default_origin()),
    )
    .unwrap();
    let signed = runtime::receipt::SignedReceipt::from_bytes(&std::fs::read(&receipt).unwrap()).unwrap();
    signed.verify(&trust).unwrap();
}

#[test]
fn a_fifo_or_device_as_the_module_is_refused_at_once() {
    let node = Node::new();
    let bundle = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let module = bundle.join("module.wasm");
    std::fs::remove_file(&module).unwrap();
    assert!(Command::new("mkfifo").arg(&module).status().unwrap().success());
    let started = std::time::Instant::now();
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "read", "not_a_regular_file", "is not a regular file");
    std::fs::remove_file(&module).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &module).unwrap();
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "read", "not_a_regular_file", "is not a regular file");
    // A FIFO as the file given on the command line, too.
    let fifo = node.path("fifo.wasm");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, json) = node.exec_json(&[s(&fifo)]);
    assert_refused(&json, code, "read", "not_a_regular_file", "is not a regular file");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "nothing blocked");
}

#[test]
fn a_receipt_never_replaces_a_device() {
    let node = Node::new();
    let hello = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let device = node.path("null");
    assert!(Command::new("mknod").arg(&device).args(["c", "1", "3"]).status().unwrap().success());
    assert_eq!(node.exec(&["--receipt", s(&device), s(&hello)]).status.code(), Some(0));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&device).unwrap().file_type().is_char_device(), "still /dev/null");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let node = Node::new();
    let output = node.exec(&[s(&node.path("no-such-bundle"))]);
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(EXE).args(["exec", "--trust", "/nonexistent/trust", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: cannot load the trust store /nonexistent/trust"), "{stderr}");
    let output = Command::new(EXE).args(["exec", "--bogus"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn all_runs_every_tenant_in_isolation() {
    let node = Node::new();
    let deploy = node.path("deploy");
    let shared = node.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "shared\n").unwrap();
    node.signer.bundle(&deploy.join("alpha"), "alpha", &fixture("hello"), Capabilities::default());
    node.signer.bundle(
        &deploy.join("beta"),
        "beta",
        &fixture("loop"),
        Capabilities { fuel: 1_000_000, ..Capabilities::default() },
    );
    node.signer.bundle(&deploy.join("gamma"), "delta", &fixture("hello"), Capabilities::default());
    node.signer.bundle(&deploy.join("reader1"), "reader1", &fixture("fs_probe"), data_caps(PreopenMode::ReadOnly));
    node.signer.bundle(&deploy.join("reader2"), "reader2", &fixture("fs_probe"), data_caps(PreopenMode::ReadOnly));
    unsigned_bundle(&deploy.join("zeta"), "zeta", &fixture("hello"), Capabilities::default());
    let config = node.path("nightcore.toml");
    std::fs::write(
        &config,
        format!(
            "[tenants.reader1]\ndirs = {{ \"/data\" = \"{0}\" }}\n[tenants.reader2]\ndirs = {{ \"/data\" = \"{0}\" }}\n",
            s(&shared)
        ),
    )
    .unwrap();

    let (code, json) =
        node.exec_json(&["--config", s(&config), "--all", "--parallel", "3", s(&deploy), "--", "r", "in.txt"]);
    assert_eq!(code, 1, "{json}");
    let tenants = json["tenants"].as_array().unwrap();
    let by_dir = |name: &str| tenants.iter().find(|t| t["bundle"].as_str().unwrap().ends_with(name)).unwrap();
    assert_eq!(by_dir("alpha")["outcome"]["kind"], "exited");
    assert_eq!(by_dir("alpha")["stdout"], "hello\n");
    assert_eq!(by_dir("beta")["outcome"]["kind"], "fuel_exhausted");
    assert_eq!(by_dir("gamma")["refusal"]["reason"], "tenant_mismatch");
    assert_eq!(by_dir("reader1")["stdout"], "shared\n");
    assert_eq!(by_dir("reader2")["refusal"]["reason"], "shared_host_directory");
    assert_eq!(by_dir("zeta")["refusal"]["reason"], "unsigned");
    assert_eq!(json["summary"]["total"], 6);
    assert_eq!(json["summary"]["exited_zero"], 2);
    assert_eq!(json["summary"]["stopped_by_limit"], 1);
    assert_eq!(json["summary"]["refused"], 3);
}

#[test]
fn a_single_file_module_runs_and_is_refused_exactly_like_its_bundle() {
    let node = Node::new();
    let audit = node.path("state/audit.log");
    std::fs::create_dir_all(audit.parent().unwrap()).unwrap();
    let bundle = node.bundle("hello", "hello", &fixture("hello"), Capabilities::default());
    let module_len = std::fs::read(bundle.join("module.wasm")).unwrap().len();
    let file = node.path("hello.signed.wasm");
    std::fs::write(&file, single_file(&bundle)).unwrap();

    let (code, json) = node.exec_json(&["--audit", s(&audit), s(&file)]);
    assert_eq!((code, &json["stdout"], &json["verification"]), (0, &"hello\n".into(), &"verified".into()), "{json}");
    let (_, from_bundle) = node.exec_json(&[s(&bundle)]);
    assert_eq!(json["module_sha256"], from_bundle["module_sha256"], "the same bytes are verified and run");

    // A code byte: the signed hash no longer matches, as for a bundle.
    let mut code_flip = std::fs::read(&file).unwrap();
    code_flip[module_len - 2] ^= 1;
    let tampered = node.path("code-flip.wasm");
    std::fs::write(&tampered, &code_flip).unwrap();
    let (code, json) = node.exec_json(&["--audit", s(&audit), s(&tampered)]);
    assert_refused(&json, code, "verify", "hash_mismatch", "module hash mismatch");

    // An unsigned byte of the section (the untrusted comment) is still refused.
    let mut comment_flip = std::fs::read(&file).unwrap();
    let at = comment_flip.windows(7).rposition(|w| w == b"minisig").unwrap() + 12;
    comment_flip[at] ^= 1;
    std::fs::write(&tampered, &comment_flip).unwrap();
    let (code, json) = node.exec_json(&["--audit", s(&audit), s(&tampered)]);
    assert_refused(&json, code, "read", "malformed_bundle_section", "canonical form");

    // A plain module with no bundle inside is not runnable.
    std::fs::write(&tampered, fixture("hello")).unwrap();
    let (code, json) = node.exec_json(&[s(&tampered)]);
    assert_refused(&json, code, "read", "no_bundle_section", "carries no nightcore.bundle.v1 section");

    let log = std::fs::read_to_string(&audit).unwrap();
    let entries: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["data"]["reason"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        kinds,
        [
            ("run.started", ""),
            ("run.finished", ""),
            ("run.refused", "hash_mismatch"),
            ("run.refused", "malformed_bundle_section")
        ]
    );

    // Deployed as a tenant directory holding only module.wasm, it runs under --all.
    let deploy = node.path("deploy");
    std::fs::create_dir_all(deploy.join("hello")).unwrap();
    std::fs::write(deploy.join("hello/module.wasm"), single_file(&bundle)).unwrap();
    let (code, json) = node.exec_json(&["--all", s(&deploy)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["tenants"][0]["stdout"], "hello\n");
    // A second bundle section is named the same in the directory form as in the file.
    let mut twice = single_file(&bundle);
    twice.extend_from_within(module_len..);
    std::fs::write(deploy.join("hello/module.wasm"), &twice).unwrap();
    std::fs::write(&tampered, &twice).unwrap();
    for path in [deploy.join("hello"), tampered.clone()] {
        let (code, json) = node.exec_json(&[s(&path)]);
        assert_refused(&json, code, "read", "duplicate_bundle_section", "2 nightcore.bundle.v1 sections");
    }
}

#[test]
fn another_tenants_keys_cannot_get_a_bundle_run_under_this_tenant() {
    // billing's key signs `hello`: trusted, but scoped to billing only.
    let node = Node::new();
    let billing = signer::minisign::SecretKey::generate();
    let trust = &node.signer.trust_dir;
    std::fs::write(trust.join("billing.pub"), billing.public_key().to_file_text()).unwrap();
    std::fs::write(
        trust.join("trust.toml"),
        format!("threshold = 1\n[tenants.billing]\nkeys = [\"{}\"]\n", billing.key_id()),
    )
    .unwrap();
    let bundle = unsigned_bundle(&node.path("hello"), "hello", &fixture("hello"), Capabilities::default());
    let manifest = std::fs::read(bundle.join("manifest.json")).unwrap();
    signer::bundle::write_signature(&bundle, &billing.sign(&manifest, "billing").unwrap()).unwrap();
    let (code, json) = node.exec_json(&[s(&bundle)]);
    assert_refused(&json, code, "verify", "key_not_allowed_for_tenant", "hello");
}
