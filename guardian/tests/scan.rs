//! `guardian scan` and `guardian status` end to end: exit codes, JSON, and
//! the report-only / repair split.

// allow-unwrap-in-tests does not reach helpers; a panic is the right failure in a test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::{Daemon, Node};

fn outcomes(json: &Value) -> Vec<(String, String, Option<String>)> {
    json["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["tenant"].as_str().unwrap().into(),
                o["action"].as_str().unwrap().into(),
                o["reason_code"].as_str().map(Into::into),
            )
        })
        .collect()
}

#[test]
fn first_run_then_report_only_then_repair() {
    let node = Node::new("threshold = 1\n");
    let alpha = node.deploy_bundle("alpha", 1, &[0]);
    node.deploy_bundle("beta", 1, &[]);
    let original = node.files("alpha");

    // First run without --repair: the signed bundle is trusted, the unsigned one only reported.
    let (code, json, stderr) = node.scan(false);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        outcomes(&json),
        vec![
            ("alpha".into(), "trusted".into(), None),
            ("beta".into(), "drift_reported".into(), Some("unsigned".into()))
        ]
    );
    assert_eq!((json["clean"].as_bool(), json["repaired"].as_bool()), (Some(false), Some(false)));
    assert!(node.tenant("beta").exists());

    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(outcomes(&json), vec![("beta".into(), "quarantined".into(), Some("unsigned".into()))]);
    assert!(!node.tenant("beta").exists());
    let kinds: Vec<&str> = json["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["drift.detected", "drift.quarantined"]);

    let (code, json, stderr) = node.scan(false);
    assert_eq!(code, 0, "{json:#} {stderr}");
    assert_eq!(json["clean"], true);

    fs::set_permissions(alpha.join("signatures"), fs::Permissions::from_mode(0o777)).unwrap();
    let drifted = node.deploy_tree();
    let (code, json, _) = node.scan(false);
    assert_eq!(code, 1);
    assert_eq!(outcomes(&json), vec![("alpha".into(), "drift_reported".into(), Some("layout".into()))]);
    // Every byte, mode and name of every tenant is as the setup left it.
    assert_eq!(node.deploy_tree(), drifted, "report-only must not touch the deploy tree");
    let (code, json, _) = node.scan(true);
    assert_eq!(code, 1);
    assert_eq!(outcomes(&json), vec![("alpha".into(), "rolled_back".into(), Some("layout".into()))]);
    assert_eq!(node.files("alpha"), original);
    assert_eq!(node.scan(false).0, 0);
}

#[test]
fn a_signed_upgrade_is_clean_and_raises_the_floor() {
    let node = Node::new("threshold = 2\n");
    node.deploy_bundle("alpha", 1, &[0, 1]);
    assert_eq!(node.scan(true).0, 0);
    node.swap_in("alpha", 5, &[1, 2]);
    let (code, json, stderr) = node.scan(false);
    assert_eq!(code, 0, "{json:#} {stderr}");
    assert_eq!(outcomes(&json), vec![("alpha".into(), "upgraded".into(), None)]);
    node.swap_in("alpha", 4, &[1, 2]);
    let (code, json, _) = node.scan(true);
    assert_eq!(code, 1);
    assert_eq!(outcomes(&json), vec![("alpha".into(), "rolled_back".into(), Some("downgrade".into()))]);

    let out = node.guardian("status").arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((status["tenants"][0]["version"].as_u64(), status["tenants"][0]["floor"].as_u64()), (Some(5), Some(5)));
    let recent: Vec<&str> =
        status["recent_events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(recent, ["module.trusted", "module.upgraded", "drift.detected", "rollback.completed"]);
    let text = node.guardian("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("alpha") && text.contains("floor 5"), "{text}");
}

#[test]
fn new_tenants_can_be_refused() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    assert_eq!(node.scan(true).0, 0);
    node.deploy_bundle("beta", 1, &[0]);
    let out = node.guardian("scan").args(["--repair", "--json", "--new-tenants", "refuse"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcomes(&json), vec![("beta".into(), "quarantined".into(), Some("new_tenant_refused".into()))]);
    node.deploy_bundle("beta", 1, &[0]);
    let (code, json, _) = node.scan(true);
    assert_eq!((code, outcomes(&json)), (0, vec![("beta".into(), "trusted".into(), None)]));
}

#[test]
fn a_corrupted_state_is_an_error_not_a_verdict() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    assert_eq!(node.scan(true).0, 0);
    let state = node.state().join("state.json");
    let good = fs::read(&state).unwrap();
    fs::write(&state, b"{\"schema\":\"nightcore.guardian.state.v1\"").unwrap();
    let (code, _, stderr) = node.scan(false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is corrupt"), "{stderr}");
    let out = node.guardian("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    fs::write(&state, good).unwrap();
    let store = node.state().join("store");
    let entry = fs::read_dir(&store).unwrap().next().unwrap().unwrap().path();
    fs::write(entry.join("manifest.json"), b"{}").unwrap();
    let (code, _, stderr) = node.scan(false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("state is inconsistent for tenant alpha") && stderr.contains("hash to"), "{stderr}");
}

#[test]
fn only_one_guardian_per_state_directory() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    let d = Daemon::start(&node, &["--rescan-secs", "3600"], &[]);
    let (code, _, stderr) = node.scan(false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("another guardian holds"), "{stderr}");
    let (status, _) = d.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn help_documents_exit_codes_and_the_test_hook() {
    let out = std::process::Command::new(support::guardian_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 = drift found"), "{text}");
    assert!(text.contains("NIGHTCORE_TEST_ROLLBACK_PAUSE_MS"), "{text}");
    for sub in ["scan", "status", "watch"] {
        let out = std::process::Command::new(support::guardian_bin()).args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}");
    }
}

#[test]
fn a_tampered_audit_log_is_reported_by_scan_and_restored_by_scan_repair() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    node.deploy_bundle("beta", 1, &[0]);
    assert_eq!(node.scan(true).0, 0);
    let log = node.audit_log();
    let good = fs::read(&log).unwrap();
    let text = String::from_utf8(good.clone()).unwrap().replacen("\"tenant\":\"alpha\"", "\"tenant\":\"alphx\"", 1);
    fs::write(&log, &text).unwrap();

    let (code, json, stderr) = node.scan(false);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        (json["audit_tampered"]["file"].as_str(), json["audit_tampered"]["reason"].as_str()),
        (Some("log"), Some("rewritten"))
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), text, "report-only must not touch the log");

    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(json["audit_tampered"]["reason"], "rewritten");
    assert!(fs::read(&log).unwrap().starts_with(&good));
    assert!(matches!(node.audit_report(), audit::VerifyReport::Intact(_)));
    assert_eq!(node.audit_kinds().last().map(String::as_str), Some("audit.tampered"));
    let (code, json, _) = node.scan(false);
    assert_eq!(code, 0, "{json:#}");
}

#[test]
fn single_file_tenants_are_verified_rolled_back_and_upgraded_like_bundles() {
    let node = Node::new("threshold = 1\n");
    let alpha = node.deploy_single_file("alpha", 1, &[0]);
    let (code, json, stderr) = node.scan(true);
    assert_eq!((code, outcomes(&json)), (0, vec![("alpha".into(), "trusted".into(), None)]), "{stderr}");
    let original = node.files("alpha");
    assert_eq!(original.keys().collect::<Vec<_>>(), ["/", "module.wasm"], "the directory and the one file");

    let module = alpha.join("module.wasm");
    let bytes = fs::read(&module).unwrap();
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 1;
        fs::write(&module, b).unwrap();
    };
    // A byte of the module part, then a byte of the unsigned untrusted comment.
    let section_at = bytes.windows(b"nightcore.bundle.v1".len()).position(|w| w == b"nightcore.bundle.v1").unwrap();
    let comment_at = bytes.windows(b"untrusted comment".len()).position(|w| w == b"untrusted comment").unwrap();
    for (at, reason) in [(section_at - 6, "hash_mismatch"), (comment_at + 20, "malformed_bundle_section")] {
        flip(at);
        let (code, json, _) = node.scan(true);
        assert_eq!(code, 1);
        assert_eq!(outcomes(&json), vec![("alpha".into(), "rolled_back".into(), Some(reason.into()))], "{json:#}");
        assert_eq!(node.files("alpha"), original, "the verified single file is restored byte for byte");
    }

    // A second bundle section appended: named as such, as `signer verify` and the runtime name it.
    let section_start = support::module("alpha", 1, 0).len();
    let mut twice = bytes.clone();
    twice.extend_from_slice(&bytes[section_start..]);
    fs::write(&module, &twice).unwrap();
    let (_, json, _) = node.scan(true);
    assert_eq!(
        outcomes(&json),
        vec![("alpha".into(), "rolled_back".into(), Some("duplicate_bundle_section".into()))],
        "{json:#}"
    );
    assert_eq!(node.files("alpha"), original);

    // A signed upgrade in single-file form is accepted; an older one is a downgrade.
    node.deploy_single_file("alpha", 2, &[0]);
    let (code, json, _) = node.scan(true);
    assert_eq!((code, outcomes(&json)), (0, vec![("alpha".into(), "upgraded".into(), None)]));
    node.deploy_single_file("alpha", 1, &[0]);
    let (_, json, _) = node.scan(true);
    assert_eq!(outcomes(&json), vec![("alpha".into(), "rolled_back".into(), Some("downgrade".into()))]);
    // A signature file beside a lone module.wasm makes it a directory bundle missing its manifest.
    fs::create_dir(alpha.join("signatures")).unwrap();
    fs::write(alpha.join("signatures/x.minisig"), b"x").unwrap();
    let (_, json, _) = node.scan(true);
    assert_eq!(outcomes(&json), vec![("alpha".into(), "rolled_back".into(), Some("file_missing".into()))]);

    let kinds = node.audit_kinds();
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(
        (count("drift.detected"), count("rollback.completed"), count("module.upgraded")),
        (5, 5, 1),
        "{kinds:?}"
    );
    assert!(matches!(node.audit_report(), audit::VerifyReport::Intact(_)));
}

#[test]
fn another_tenants_keys_cannot_take_a_tenant_over() {
    // Billing's two keys sign `hello v999`. Accepted, it would raise hello's
    // floor to 999 and lock its real releases out as downgrades.
    let node = Node::new("threshold = 1\n");
    let billing = [node.keys[1].key_id(), node.keys[2].key_id()];
    node.set_trust(&format!(
        "threshold = 1\n[tenants.billing]\nkeys = [\"{}\", \"{}\"]\nthreshold = 2\n",
        billing[0], billing[1]
    ));
    node.deploy_bundle("hello", 1, &[0]);
    let (code, _, stderr) = node.scan(true);
    assert_eq!(code, 0, "{stderr}");
    node.swap_in("hello", 999, &[1, 2]);
    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        outcomes(&json),
        vec![("hello".into(), "rolled_back".into(), Some("key_not_allowed_for_tenant".into()))]
    );
    // hello's own next release is still an upgrade.
    node.swap_in("hello", 2, &[0]);
    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 0, "{json} {stderr}");
    let status = node.guardian("status").arg("--json").output().unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["tenants"][0]["version"], 2);
    assert_eq!(status["tenants"][0]["floor"], 2);
}

#[test]
fn a_deploy_entry_whose_name_is_not_utf8_is_quarantined_not_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    let odd = node.deploy().join(std::ffi::OsStr::from_bytes(b"hel\xfflo"));
    node.bundle_at(&odd, "hello", 1, &[0]);
    let (code, json, stderr) = node.scan(false);
    assert_eq!(code, 1, "{stderr}");
    assert!(outcomes(&json).contains(&(
        "hel\\xfflo".into(),
        "drift_reported".into(),
        Some("tenant_name_not_utf8".into())
    )));
    assert!(odd.exists(), "report-only leaves it");
    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(outcomes(&json), vec![("hel\\xfflo".into(), "quarantined".into(), Some("tenant_name_not_utf8".into()))]);
    assert!(!odd.exists(), "out of the deploy tree, so nothing runs it");
    assert!(node.audit_kinds().contains(&"drift.quarantined".to_string()));
}

#[test]
fn names_with_terminal_escapes_are_shown_escaped() {
    let node = Node::new("threshold = 1\n");
    let evil = node.deploy().join("\u{1b}[2J\u{1b}[31mevil");
    fs::create_dir_all(&evil).unwrap();
    fs::write(evil.join("module.wasm"), b"x").unwrap();
    let scan = node.guardian("scan").arg("--repair").output().unwrap();
    let stdout = String::from_utf8_lossy(&scan.stdout);
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[2J\\u{1b}[31mevil"), "{stdout}");
    let status = node.guardian("status").output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("evil") && !text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn the_report_writes_through_a_device_and_never_replaces_it() {
    use std::os::unix::fs::FileTypeExt;
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    assert_eq!(node.scan(true).0, 0);
    let device = node.root.join("null");
    assert!(std::process::Command::new("mknod").arg(&device).args(["c", "1", "3"]).status().unwrap().success());
    let host_pub = node.root.join("audit/host.pub");
    let out = std::process::Command::new(support::guardian_bin())
        .args(["report", "--html"])
        .arg(&device)
        .arg("--audit")
        .arg(node.audit_log())
        .arg("--log-key")
        .arg(&host_pub)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::symlink_metadata(&device).unwrap().file_type().is_char_device(), "still a device");
}

fn store_entries(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(node.state().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `guardian gc` keeps each tenant's current version and the newest earlier
/// ones, and quarantine evidence younger than the limit; it removes the rest,
/// records what it removed, and rollbacks still work afterwards.
#[test]
fn gc_keeps_the_newest_versions_and_recent_evidence_and_records_what_it_removed() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    node.deploy_bundle("beta", 1, &[0]);
    let mut digests = Vec::new();
    for version in 1..=4 {
        if version > 1 {
            node.swap_in("alpha", version, &[0]);
        }
        let (code, _, stderr) = node.scan(true);
        assert_eq!(code, 0, "{stderr}");
        let status = node.status();
        let alpha = status["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == "alpha").unwrap().clone();
        digests.push(alpha["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(store_entries(&node).len(), 5, "four versions of alpha, one of beta");
    let quarantine = node.state().join("quarantine");
    fs::create_dir_all(quarantine.join("20250101T000000Z-1-0-00000000-alpha")).unwrap();
    fs::write(quarantine.join("20250101T000000Z-1-0-00000000-alpha/module.wasm"), b"old evidence").unwrap();
    let recent =
        format!("{}-1-1-00000000-alpha", signer::manifest::format_compact_utc(time::OffsetDateTime::now_utc()));
    fs::create_dir_all(quarantine.join(&recent)).unwrap();

    let out = node.guardian("gc").args(["--keep-versions", "2", "--quarantine-days", "30", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: Vec<&str> =
        report["store_removed"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut expected = vec![digests[0].as_str(), digests[1].as_str()];
    expected.sort_unstable();
    let mut removed_sorted = removed.clone();
    removed_sorted.sort_unstable();
    assert_eq!(removed_sorted, expected, "alpha v1 and v2 go; v3, v4 and beta stay");
    assert_eq!(report["versions_forgotten"], 2);
    let kept = store_entries(&node);
    assert!(kept.contains(&digests[2]) && kept.contains(&digests[3]) && kept.len() == 3, "{kept:?}");
    assert_eq!(report["quarantine_removed"][0]["name"], "20250101T000000Z-1-0-00000000-alpha");
    assert_eq!(report["quarantine_removed"].as_array().unwrap().len(), 1);
    assert!(quarantine.join(&recent).exists());
    assert!(report["bytes_freed"].as_u64().unwrap() > 12);

    let recorded = node.audit_kinds();
    assert_eq!(recorded.last().map(String::as_str), Some("gc.completed"), "{recorded:?}");
    assert!(matches!(node.audit_report(), audit::VerifyReport::Intact(_)));
    // The current version is still there to roll back to.
    let current = node.files("alpha");
    fs::write(node.tenant("alpha").join("module.wasm"), b"\0asm tampered").unwrap();
    let (code, _, stderr) = node.scan(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(node.files("alpha"), current);
    // A second pass finds nothing more to remove.
    let out = node.guardian("gc").args(["--keep-versions", "2", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["store_removed"].as_array().unwrap().len(), report["versions_forgotten"].as_u64()),
        (0, Some(0))
    );
}

/// `guardian retire` takes a tenant out of service: its directory goes to
/// the quarantine, the state keeps only its floor, a redeploy of any version
/// it ever had is refused and quarantined, a newer signed version brings
/// the name back, and `guardian gc` then frees the old store entries.
#[test]
fn a_retired_tenant_stays_out_of_service_until_a_newer_signed_version() {
    let node = Node::new("threshold = 1\n");
    node.deploy_bundle("alpha", 1, &[0]);
    node.deploy_bundle("beta", 1, &[0]);
    assert_eq!(node.scan(true).0, 0);
    node.swap_in("alpha", 2, &[0]);
    assert_eq!(node.scan(true).0, 0);

    let out = node.guardian("retire").args(["alpha", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let retired: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (retired["tenant"].as_str(), retired["version"].as_u64(), retired["floor"].as_u64()),
        (Some("alpha"), Some(2), Some(2))
    );
    assert!(!node.tenant("alpha").exists(), "the deploy directory is out of the deploy tree");
    let evidence: Vec<String> = fs::read_dir(node.state().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("-alpha"))
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let status = node.status();
    let in_service: Vec<&str> =
        status["tenants"].as_array().unwrap().iter().map(|t| t["tenant"].as_str().unwrap()).collect();
    assert_eq!(in_service, ["beta"]);
    assert_eq!(
        (status["retired"][0]["tenant"].as_str(), status["retired"][0]["floor"].as_u64()),
        (Some("alpha"), Some(2))
    );
    assert_eq!(node.audit_kinds().last().map(String::as_str), Some("tenant.retired"));

    // A scan does not bring it back from the store, and neither does a
    // deployer with any version it had.
    assert_eq!(node.scan(true).0, 0, "nothing in service drifted");
    assert!(!node.tenant("alpha").exists());
    for old in [1, 2] {
        node.deploy_bundle("alpha", old, &[0]);
        let (code, json, stderr) = node.scan(true);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(outcomes(&json), [("alpha".into(), "quarantined".into(), Some("tenant_retired".into()))], "{json}");
        assert!(!node.tenant("alpha").exists(), "v{old} was taken out of the deploy tree");
    }

    // Retiring it again is allowed (it finishes a cut-short retirement);
    // a tenant the state never knew is an error naming it.
    assert!(node.guardian("retire").arg("alpha").output().unwrap().status.success());
    let out = node.guardian("retire").arg("gamma").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tenant gamma is not in service on this node"), "{stderr}");

    // The old versions are no longer named by the state: gc frees them.
    let out = node.guardian("gc").args(["--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["store_removed"].as_array().unwrap().len(), 2, "{report}");

    // A newer signed version is a new tenant again.
    node.deploy_bundle("alpha", 3, &[0]);
    let (code, json, stderr) = node.scan(true);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(outcomes(&json), [("alpha".into(), "trusted".into(), None)], "{json}");
    assert_eq!(json["outcomes"][0]["version"], 3);
    let status = node.status();
    assert_eq!(status["retired"].as_array().unwrap().len(), 0);
    assert!(matches!(node.audit_report(), audit::VerifyReport::Intact(_)));
}
