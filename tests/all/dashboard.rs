//! `guardian report --html`: a log written through the audit library is
//! rendered by the real binary and loaded in headless Chromium, and the
//! page's timeline, after its script ran, must show exactly the log's events,
//! with a hostile tenant name shown as text and never run.
//!
//! Chromium is required, not optional: `cargo xtask test` installs it
//! (`apt-get install chromium`); without it this test fails saying so.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use audit::{Actor, AuditLog, CheckpointSigner, Event};
use serde_json::{Value, json};
use signer::minisign::SecretKey;
use signer::trust::write_trust_store;

use crate::support::{cmd, run};

const EVIL_TENANT: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
const ORIGIN: &str = "nightcore.test/dashboard";

/// The page's events: (kind, writer, data).
fn events() -> Vec<(&'static str, &'static str, Value)> {
    let run = |tenant: &str, code: i64, fuel: u64, micros: u64| json!({"tenant": tenant, "version": 2, "outcome": "exited", "exit_code": code, "fuel_consumed": fuel, "fuel_limit": 1_000_000_000u64, "wall_time_us": micros});
    vec![
        ("guardian.started", "guardian", json!({"tenants": 2, "pid": 4242})),
        ("module.trusted", "guardian", json!({"tenant": "hello", "version": 2, "how": "first_run"})),
        ("module.trusted", "guardian", json!({"tenant": "sieve", "version": 1, "how": "first_run"})),
        ("run.finished", "runtime", run("hello", 0, 120_000, 1_800)),
        ("run.finished", "runtime", run("hello", 0, 125_000, 2_100)),
        ("run.finished", "runtime", run("sieve", 0, 48_000_000, 91_000)),
        (
            "run.finished",
            "runtime",
            json!({"tenant": "sieve", "version": 1, "outcome": "fuel_exhausted", "exit_code": null, "fuel_consumed": 200_000_000u64, "wall_time_us": 350_000}),
        ),
        (
            "run.refused",
            "runtime",
            json!({"bundle": "/srv/deploy/hello", "stage": "verify", "reason": "hash_mismatch", "detail": "module.wasm does not match"}),
        ),
        (
            "run.refused",
            "runtime",
            json!({"bundle": "/srv/deploy/sieve", "stage": "verify", "reason": "expired", "detail": "expired"}),
        ),
        (
            "drift.detected",
            "guardian",
            json!({"tenant": "hello", "path": "module.wasm", "reason_code": "hash_mismatch", "action": "rollback"}),
        ),
        (
            "rollback.completed",
            "guardian",
            json!({"tenant": "hello", "version": 2, "reason_code": "hash_mismatch", "reverified": true}),
        ),
        ("module.upgraded", "guardian", json!({"tenant": "sieve", "from_version": 1, "to_version": 2, "version": 2})),
        ("run.finished", "runtime", run(EVIL_TENANT, 3, 7_000, 900)),
        (
            "drift.detected",
            "guardian",
            json!({"tenant": EVIL_TENANT, "path": EVIL_TENANT, "reason_code": "bad_signature", "reason": EVIL_TENANT}),
        ),
    ]
}

/// A trust store whose log key is the host key, and a log of `events()`
/// checkpointed by that key, plus one entry appended after the checkpoint.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    log: PathBuf,
    trust: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (maintainer, host) = (SecretKey::generate(), SecretKey::generate());
    let trust = root.join("trust");
    write_trust_store(
        &trust,
        &[("alice", &maintainer.public_key()), ("host", &host.public_key())],
        &format!("threshold = 1\n[log_keys]\n\"{}\" = [\"{}\"]\n", host.key_id(), ORIGIN),
    )
    .unwrap();
    let log = root.join("state/audit.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut audit_log = AuditLog::open(&log).unwrap();
    for (kind, binary, data) in events() {
        let Value::Object(data) = data else { panic!("event data must be an object") };
        audit_log.append(&Event::new(kind, Actor::new(binary, "node-1"), data)).unwrap();
    }
    let signer = CheckpointSigner::new(ORIGIN, host.signing_key().clone()).unwrap();
    audit_log.write_checkpoint(&signer).unwrap();
    // One entry after the checkpoint: intact, but not covered by a signature yet.
    let Value::Object(data) = json!({"pid": 4242}) else { unreachable!() };
    audit_log.append(&Event::new("guardian.stopped", Actor::new("guardian", "node-1"), data)).unwrap();
    Fixture { _dir: dir, root, log, trust }
}

fn expected_counts() -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (kind, _, _) in events() {
        *counts.entry(kind.to_string()).or_default() += 1;
    }
    *counts.entry("guardian.stopped".to_string()).or_default() += 1;
    counts
}

fn chromium() -> PathBuf {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "headless Chromium is required for the dashboard test and none of {candidates:?} exists; \
             `cargo xtask test` installs it (apt-get install -y chromium)"
        )
    })
}

/// Loads `page` in headless Chromium with networking features off and
/// returns the DOM after the page's scripts ran.
fn dump_dom(page: &Path, profile: &Path) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {} within 120 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// Counts timeline rows per `data-kind` in serialised HTML.
fn timeline_counts(html: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for piece in html.split("<tr class=\"event").skip(1) {
        let kind = piece
            .split("data-kind=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a timeline row without data-kind");
        *counts.entry(kind.to_string()).or_default() += 1;
    }
    counts
}

/// The per-kind counts the page's script computed into `#kind-counts`.
fn script_counts(dom: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for piece in dom.split("<tr data-count-kind=\"").skip(1) {
        let kind = piece.split('"').next().unwrap().to_string();
        let count = piece.split("<td class=\"num\">").nth(1).and_then(|rest| rest.split('<').next()).unwrap();
        counts.insert(kind, count.parse().unwrap());
    }
    counts
}

#[test]
fn the_dashboard_shows_every_event_of_the_log_in_a_browser() {
    let f = fixture();
    let page = f.root.join("report.html");
    let r = run(cmd("guardian")
        .args(["report", "--json", "--html"])
        .arg(&page)
        .arg("--audit")
        .arg(&f.log)
        .arg("--trust")
        .arg(&f.trust));
    assert_eq!(r.code, 0, "guardian report failed: {}{}", r.stdout, r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    let total = events().len() + 1;
    assert_eq!(out["status"], "intact", "{}", r.stdout);
    assert_eq!(out["entries_read"], total);
    assert_eq!(out["entries_shown"], total);

    let html = fs::read_to_string(&page).unwrap();
    for fetch in ["http:", "https:", "src=\"", "href=", "url("] {
        assert!(!html.contains(fetch), "the page refers to something outside itself ({fetch})");
    }

    let dom = dump_dom(&page, &f.root.join("chromium-profile"));
    assert!(dom.contains("data-script=\"ran\""), "the page's script did not run (blocked by its own policy?)");
    let expected = expected_counts();
    assert_eq!(timeline_counts(&dom), expected, "timeline rows per kind in the rendered page");
    assert_eq!(script_counts(&dom), expected, "per-kind counts computed by the page's script");
    assert!(dom.contains(&format!("<span id=\"shown-count\">{total}</span>")), "every event is shown by default");

    // The verification status of the log and of its latest checkpoint.
    assert!(dom.contains("data-status=\"intact\""));
    assert!(dom.contains(&format!("<span id=\"checkpoint-size\">{}</span>", events().len())));
    assert!(dom.contains(ORIGIN));
    assert_eq!(
        dom.matches("<tr class=\"event uncovered\"").count(),
        1,
        "only the entry after the checkpoint is uncovered"
    );

    // Per-tenant charts: hello ran twice, sieve twice, the hostile tenant once.
    assert_eq!(dom.matches("data-chart=\"fuel\" data-runs=\"2\"").count(), 2);
    assert_eq!(dom.matches("data-chart=\"wall-time\" data-runs=\"1\"").count(), 1);
    let sieve = dom
        .split("<section class=\"tenant\" data-tenant=\"sieve\">")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert_eq!(sieve.matches("<tr class=\"event").count(), 5, "sieve: trusted, two runs, a refusal, an upgrade");

    // The hostile tenant name is text: no element of it exists, none of it ran.
    assert_eq!(dom.matches("<script").count(), 1, "only the page's own script element may exist");
    assert!(!dom.contains("<img"), "an injected element was created");
    assert!(!dom.contains("<title>pwned"), "an injected script ran");
    assert!(dom.contains("&lt;script&gt;document.title="), "the hostile name is shown as text");
    assert_eq!(dom.matches("<tr class=\"event\" data-kind=\"run.finished\" data-category=\"failure\"").count(), 2);
}

#[test]
fn a_tampered_log_still_renders_and_says_so_with_exit_1() {
    let f = fixture();
    let text = fs::read_to_string(&f.log).unwrap();
    let edited = text.replacen("\"fuel_consumed\":48000000", "\"fuel_consumed\":4800", 1);
    assert_ne!(edited, text);
    fs::write(&f.log, edited).unwrap();
    let page = f.root.join("report.html");
    let r = run(cmd("guardian")
        .args(["report", "--html"])
        .arg(&page)
        .arg("--audit")
        .arg(&f.log)
        .arg("--trust")
        .arg(&f.trust));
    assert_eq!(r.code, 1, "a tampered log must exit 1: {}{}", r.stdout, r.stderr);
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("data-status=\"tampered\""));
    assert!(html.contains("First bad entry: seq 5."), "the edited entry is named");
}

#[test]
fn the_report_needs_a_trusted_log_key() {
    let f = fixture();
    fs::write(f.trust.join("trust.toml"), "threshold = 1\n").unwrap();
    let r = run(cmd("guardian")
        .args(["report", "--html"])
        .arg(f.root.join("r.html"))
        .arg("--audit")
        .arg(&f.log)
        .arg("--trust")
        .arg(&f.trust));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("lists no log_keys"), "{}", r.stderr);
    assert!(!f.root.join("r.html").exists());
}
