//! `guardian audit …` through the real binary: verification verdicts and exit
//! codes for an intact and a tampered log, offline proofs, and key handling
//! (the checkpoint key comes from the trust store, never from beside the log).

use std::fs;
use std::path::{Path, PathBuf};

use audit::{Actor, Event, HostLog};
use signer::minisign::SecretKey;
use signer::trust::write_trust_store;

use crate::support::{cmd, run};

struct Node {
    _dir: tempfile::TempDir,
    log: PathBuf,
    trust: PathBuf,
    host_pub: PathBuf,
}

/// The node's checkpoint origin; its host key is bound to it in the trust store.
const ORIGIN: &str = "nightcore.test/node-b";

/// A log of `n` events written with the host key, and a trust store listing that key under log_keys.
fn node(n: usize) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("state/audit.log");
    let host_key = dir.path().join("state/host.key");
    let mut writer = HostLog { log: log.clone(), host_key, origin: ORIGIN.into() }.open().unwrap();
    for i in 0..n {
        let mut data = serde_json::Map::new();
        data.insert("tenant".into(), "hello".into());
        data.insert("i".into(), (i as u64).into());
        writer.append(&Event::new("run.finished", Actor::new("runtime", "test"), data)).unwrap();
    }
    let host = signer::keyfile::load_or_create_host_key(&dir.path().join("state/host.key")).unwrap();
    let host_public = host.public_key();
    let trust = dir.path().join("trust");
    let maintainer = SecretKey::generate().public_key();
    write_trust_store(
        &trust,
        &[("host", &host_public), ("maintainer", &maintainer)],
        &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"{ORIGIN}\"]\n", host.key_id()),
    )
    .unwrap();
    Node { host_pub: dir.path().join("state/host.pub"), log, trust, _dir: dir }
}

fn verify(node: &Node) -> (i32, serde_json::Value) {
    let r = run(cmd("guardian").args(["audit", "verify", "--json"]).arg(&node.log).arg("--trust").arg(&node.trust));
    let json = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("no JSON: {}{}", r.stdout, r.stderr));
    (r.code, json)
}

fn rewrite_line(path: &Path, index: usize, f: impl Fn(&str) -> String) {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<String> =
        text.lines().enumerate().map(|(i, l)| if i == index { f(l) } else { l.to_string() }).collect();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn intact_log_verifies_with_the_trust_store_and_with_log_key() {
    let node = node(5);
    let (code, json) = verify(&node);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["status"], "intact");
    assert_eq!(json["entries"], 5);
    let r = run(cmd("guardian").args(["audit", "verify"]).arg(&node.log).arg("--log-key").arg(&node.host_pub));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("intact: 5 entries"), "{}", r.stdout);
}

#[test]
fn edited_entry_is_named_with_its_seq() {
    let node = node(6);
    rewrite_line(&node.log, 3, |l| l.replace("\"i\":3", "\"i\":9"));
    let (code, json) = verify(&node);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["status"], "tampered");
    assert_eq!(json["first_bad_seq"], 3);
    assert_eq!(json["reason"]["reason"], "edited_entry");
    let human = run(cmd("guardian").args(["audit", "verify"]).arg(&node.log).arg("--trust").arg(&node.trust));
    assert!(human.stdout.starts_with("TAMPERED: first bad seq 3: entry edited"), "{}", human.stdout);
}

#[test]
fn truncated_tail_is_detected_against_the_checkpoint() {
    let node = node(6);
    let text = fs::read_to_string(&node.log).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    fs::write(&node.log, kept.join("\n") + "\n").unwrap();
    let (code, json) = verify(&node);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["reason"]["reason"], "truncated");
}

#[test]
fn checkpoint_by_a_key_outside_the_trust_store_is_reported() {
    let node = node(3);
    // Re-sign the log with a different host key, as an attacker who replaced both files would.
    fs::remove_file(audit::default_checkpoint_path(&node.log)).unwrap();
    let other = node.log.parent().unwrap().join("other.key");
    let mut writer = HostLog { log: node.log.clone(), host_key: other, origin: "evil/node".into() }.open().unwrap();
    writer.append(&Event::new("run.finished", Actor::new("runtime", "evil"), serde_json::Map::new())).unwrap();
    // And put the forging key's public half beside the log, where the node's
    // own is: keys come from the trust store, never from beside what they verify.
    fs::copy(node.log.parent().unwrap().join("other.pub"), &node.host_pub).unwrap();
    let (code, json) = verify(&node);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["reason"]["reason"], "unknown_checkpoint_key");
}

#[test]
fn another_nodes_log_key_cannot_vouch_for_this_nodes_log() {
    // Node A's host key is a log key of the trust store too, bound to A's
    // origin. With it, A rewrites B's log and signs a fresh checkpoint under
    // B's origin: every hash and signature checks out, only the binding does not.
    let node = node(3);
    let node_a_key = node.log.parent().unwrap().join("node-a.key");
    let node_a = signer::keyfile::load_or_create_host_key(&node_a_key).unwrap();
    fs::write(node.trust.join("node-a.pub"), node_a.public_key().to_file_text()).unwrap();
    let toml = fs::read_to_string(node.trust.join("trust.toml")).unwrap();
    fs::write(node.trust.join("trust.toml"), format!("{toml}\"{}\" = [\"nightcore.test/node-a\"]\n", node_a.key_id()))
        .unwrap();
    for path in [
        node.log.clone(),
        audit::default_checkpoint_path(&node.log),
        audit::tree::hashes_path(&node.log),
        audit::tree::index_path(&node.log),
    ] {
        fs::remove_file(path).unwrap();
    }
    let mut forger = HostLog { log: node.log.clone(), host_key: node_a_key, origin: ORIGIN.into() }.open().unwrap();
    forger.append(&Event::new("run.finished", Actor::new("runtime", "node-b"), serde_json::Map::new())).unwrap();

    let (code, json) = verify(&node);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["status"], "tampered");
    assert_eq!(json["reason"]["reason"], "checkpoint_key_not_bound_to_origin", "{json}");
    assert_eq!(json["reason"]["origin"], ORIGIN);
    assert_eq!(json["reason"]["key_id"], node_a.key_id().to_string());
    let text = run(cmd("guardian").args(["audit", "verify", "--trust"]).arg(&node.trust).arg("--audit").arg(&node.log));
    assert!(text.stdout.contains("may sign only for [\"nightcore.test/node-a\"]"), "{}", text.stdout);

    // The same key over its own origin would verify: the refusal is the binding.
    let proof = run(cmd("guardian").args(["audit", "prove", "0", "--audit"]).arg(&node.log));
    assert_eq!(proof.code, 0, "{}", proof.stderr);
    let proof_file = node.log.parent().unwrap().join("proof.json");
    fs::write(&proof_file, &proof.stdout).unwrap();
    let check =
        run(cmd("guardian").args(["audit", "verify-proof", "--json"]).arg(&proof_file).arg("--trust").arg(&node.trust));
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("may sign only for"), "{}", check.stdout);
}

#[test]
fn inclusion_and_consistency_proofs_verify_offline_and_detect_tampering() {
    let node = node(9);
    let prove = run(cmd("guardian").args(["audit", "prove", "4", "--audit"]).arg(&node.log));
    assert_eq!(prove.code, 0, "{}", prove.stderr);
    let proof_file = node.log.parent().unwrap().join("proof.json");
    fs::write(&proof_file, &prove.stdout).unwrap();
    let check = |file: &Path| {
        run(cmd("guardian").args(["audit", "verify-proof", "--json"]).arg(file).arg("--trust").arg(&node.trust))
    };
    let ok = check(&proof_file);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);

    let mut proof: serde_json::Value = serde_json::from_str(&prove.stdout).unwrap();
    let entry = proof["entry"].as_str().unwrap().replace("\"i\":4", "\"i\":5");
    proof["entry"] = entry.into();
    let forged = node.log.parent().unwrap().join("forged.json");
    fs::write(&forged, proof.to_string()).unwrap();
    let bad = check(&forged);
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&bad.stdout).unwrap()["valid"], false);

    let consistency = run(cmd("guardian").args(["audit", "consistency", "3", "--audit"]).arg(&node.log));
    assert_eq!(consistency.code, 0, "{}", consistency.stderr);
    let file = node.log.parent().unwrap().join("consistency.json");
    fs::write(&file, &consistency.stdout).unwrap();
    assert_eq!(check(&file).code, 0);
}

#[test]
fn show_filters_by_kind() {
    let node = node(3);
    // Kinds that share the prefix's letters but not its dotted segment must not match.
    let state = node.log.parent().unwrap();
    let mut writer =
        HostLog { log: node.log.clone(), host_key: state.join("host.key"), origin: ORIGIN.into() }.open().unwrap();
    for kind in ["runner.started", "drift.detected", "run.started"] {
        writer.append(&Event::new(kind, Actor::new("runtime", "test"), serde_json::Map::new())).unwrap();
    }
    drop(writer);
    let show = |kind: &str| {
        let r = run(cmd("guardian").args(["audit", "show", "--json", "--kind", kind, "--audit"]).arg(&node.log));
        assert_eq!(r.code, 0, "--kind {kind}: {}", r.stderr);
        r.stdout
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["kind"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(show("run"), ["run.finished", "run.finished", "run.finished", "run.started"]);
    assert_eq!(show("run.started"), ["run.started"]);
    assert_eq!(show("drift"), ["drift.detected"]);
    assert_eq!(show("policy"), Vec::<String>::new());
}

#[test]
fn help_texts() {
    for sub in ["", "verify", "verify-proof"] {
        let mut c = cmd("guardian");
        c.arg("audit");
        if !sub.is_empty() {
            c.arg(sub);
        }
        let r = run(c.arg("--help"));
        assert_eq!(r.code, 0);
        let name =
            if sub.is_empty() { "guardian_audit_help".to_string() } else { format!("guardian_audit_{sub}_help") };
        insta::assert_snapshot!(name, r.stdout);
    }
}

#[test]
fn tiles_are_written_incrementally_and_a_forked_history_is_refused_with_exit_2() {
    let node = node(5);
    let out = node.log.parent().unwrap().parent().unwrap().join("tiles");
    let tiles = |log: &Path, json: bool| {
        let mut c = cmd("guardian");
        c.args(["audit", "tiles"]).arg(&out).arg("--audit").arg(log);
        if json {
            c.arg("--json");
        }
        run(&mut c)
    };
    let first = tiles(&node.log, true);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let report: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(report, serde_json::json!({"size": 5, "previous_size": 0, "hash_tiles": 1, "entry_bundles": 1}));
    assert_eq!(fs::read(out.join("checkpoint")).unwrap(), fs::read(audit::default_checkpoint_path(&node.log)).unwrap());
    assert_eq!(fs::read(out.join("tile/0/000.p/5")).unwrap().len(), 5 * 32);

    let again = tiles(&node.log, false);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.ends_with(": 5 entries published (was 5): 1 hash tiles and 1 entry bundles written\n"),
        "{}",
        again.stdout
    );

    // Another history of the same size (events that differ), into the same directory.
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("audit.log");
    let mut writer = HostLog { log: other.clone(), host_key: other_dir.path().join("host.key"), origin: ORIGIN.into() }
        .open()
        .unwrap();
    for i in 0..5 {
        let mut data = serde_json::Map::new();
        data.insert("tenant".into(), "forked".into());
        data.insert("i".into(), i.into());
        writer.append(&Event::new("run.finished", Actor::new("runtime", "test"), data)).unwrap();
    }
    let forked = tiles(&other, false);
    assert_eq!(forked.code, 2, "{}{}", forked.stdout, forked.stderr);
    assert!(forked.stderr.contains("refusing to rewrite a published history"), "{}", forked.stderr);
}

#[test]
fn a_tlog_proof_verifies_offline_and_a_changed_one_is_refused_by_reason() {
    let node = node(5);
    let prove = |format: &str| {
        let r = run(cmd("guardian").args(["audit", "prove", "3", "--format", format, "--audit"]).arg(&node.log));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        r.stdout
    };
    let text = prove("tlog-proof");
    let json = prove("json");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "c2sp.org/tlog-proof@v1");
    assert!(lines[1].starts_with("extra "), "{text}");
    assert_eq!(lines[2], "index 3");
    // Tree of 5: the path from leaf 3 has three hashes, then the checkpoint.
    assert_eq!(lines[6], "");
    assert_eq!(
        text.split_once("\n\n").unwrap().1,
        fs::read_to_string(audit::default_checkpoint_path(&node.log)).unwrap()
    );
    assert_eq!(
        audit::AuditProof::from_bytes(text.as_bytes()).unwrap(),
        audit::AuditProof::from_bytes(json.as_bytes()).unwrap()
    );

    let dir = node.log.parent().unwrap();
    let check = |name: &str, contents: &str| {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        run(cmd("guardian").args(["audit", "verify-proof"]).arg(&path).arg("--trust").arg(&node.trust))
    };
    let valid = check("3.tlog-proof", &text);
    assert_eq!((valid.code, valid.stdout.as_str()), (0, "valid\n"), "{}", valid.stderr);
    // Another index for the same entry and path.
    let moved = check("moved.tlog-proof", &text.replacen("index 3", "index 2", 1));
    assert_eq!(moved.code, 1, "{}{}", moved.stdout, moved.stderr);
    assert!(moved.stdout.starts_with("INVALID: ") && moved.stdout.contains("seq"), "{}", moved.stdout);
    // A path hash changed.
    let mut path_changed: Vec<String> = text.lines().map(str::to_string).collect();
    path_changed[3] =
        path_changed[3].replacen(&path_changed[3][..1], if path_changed[3].starts_with('A') { "B" } else { "A" }, 1);
    let changed = check("changed.tlog-proof", &(path_changed.join("\n") + "\n"));
    assert_eq!(changed.code, 1, "{}{}", changed.stdout, changed.stderr);
    assert!(changed.stdout.starts_with("INVALID: "), "{}", changed.stdout);
    // Not the format: a leading zero, no extra data.
    let zero = check("zero.tlog-proof", &text.replacen("index 3", "index 03", 1));
    assert_eq!(zero.code, 2, "{}{}", zero.stdout, zero.stderr);
    assert!(zero.stderr.contains("the index is not a decimal without leading zeroes"), "{}", zero.stderr);
    let extra = lines[1].to_string() + "\n";
    let bare = check("bare.tlog-proof", &text.replacen(&extra, "", 1));
    assert_eq!(bare.code, 2, "{}{}", bare.stdout, bare.stderr);
    assert!(bare.stderr.contains("no extra line"), "{}", bare.stderr);
}
