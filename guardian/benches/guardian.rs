//! Guardian benchmarks, printed as plain lines (`harness = false`):
//!
//! 1. full-scan time over a deploy tree of N bundles of about 100 KiB each
//!    (`GUARDIAN_BENCH_TENANTS`, default 1000; `GUARDIAN_BENCH_MODULE_KIB`,
//!    default 100): the first run (verify, store, record every tenant) and
//!    steady-state clean scans (read and hash everything);
//! 2. the same tree checked by `aide --check` with SHA-256 only, when AIDE is
//!    installed, and the ratio;
//! 3. time from a tampering write to the `rollback.completed` event of a real
//!    `guardian watch` process, p50/p99 over `GUARDIAN_BENCH_TAMPERS`
//!    (default 50) tampers, with the default settle time and with none.
//!
//! Run with `cargo bench -p guardian`.

// A benchmark binary: a panic is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use guardian::{Admission, AuditOptions, Guardian, GuardianOptions, RepairMode, TestHooks};
use signer::bundle::{ReadLimits, write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::SecretKey;
use signer::trust::write_trust_store;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn module(tenant: usize, kib: usize) -> Vec<u8> {
    let mut payload = format!("tenant-{tenant}").into_bytes();
    payload.resize(kib * 1024, (tenant % 251) as u8);
    let mut section = vec![1u8, b'n'];
    section.extend_from_slice(&payload);
    let mut bytes = b"\0asm\x01\0\0\0\0".to_vec();
    let mut n = section.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        bytes.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    bytes.extend_from_slice(&section);
    bytes
}

fn build_tree(root: &Path, tenants: usize, kib: usize) -> SecretKey {
    let key = SecretKey::generate();
    write_trust_store(&root.join("trust"), &[("k0", &key.public_key())], "threshold = 1\n").unwrap();
    fs::create_dir_all(root.join("deploy")).unwrap();
    for t in 0..tenants {
        let name = format!("tenant-{t:05}");
        let module = module(t, kib);
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: name.clone(),
            version: 1,
            version_label: "1.0.0".into(),
            module: ModuleDigest::of(&module),
            expires: "2999-01-01T00:00:00Z".into(),
            provenance: Provenance::default(),
            capabilities: Capabilities::default(),
        };
        let dir = root.join("deploy").join(&name);
        write_unsigned(&dir, &module, &manifest).unwrap();
        let bytes = fs::read(dir.join("manifest.json")).unwrap();
        write_signature(&dir, &key.sign(&bytes, "file:manifest.json").unwrap()).unwrap();
    }
    key
}

fn options(root: &Path) -> GuardianOptions {
    GuardianOptions {
        deploy_dir: root.join("deploy"),
        trust_dir: root.join("trust"),
        state_dir: root.join("state"),
        audit: AuditOptions {
            log: root.join("audit/audit.log"),
            checkpoint: None,
            host_key: Some(root.join("audit/host.key")),
            origin: "bench/node".into(),
            tiles_dir: None,
        },
        admission: Admission::AcceptSigned,
        limits: ReadLimits::default(),
        test_hooks: TestHooks::default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn aide(root: &Path) -> Option<Duration> {
    let found = Command::new("aide").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        println!("aide: not installed (apt-get install -y aide), no comparison");
        return None;
    }
    let dir = root.join("aide");
    fs::create_dir_all(&dir).unwrap();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = format!(
        "database_in=file:{d}/aide.db\ndatabase_out=file:{d}/aide.db.new\ngzip_dbout=no\nreport_url=stdout\nnum_workers={workers}\nNC = p+u+g+s+ftype+sha256\n{deploy} NC\n",
        d = dir.display(),
        deploy = root.join("deploy").display()
    );
    fs::write(dir.join("aide.conf"), conf).unwrap();
    let run = |arg: &str| {
        let start = Instant::now();
        let out = Command::new("aide")
            .arg(format!("--config={}", dir.join("aide.conf").display()))
            .arg(arg)
            .output()
            .unwrap();
        (start.elapsed(), out)
    };
    let (init, out) = run("--init");
    assert!(
        out.status.success() || out.status.code() == Some(0),
        "aide --init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(dir.join("aide.db.new"), dir.join("aide.db")).unwrap();
    let mut checks: Vec<Duration> = (0..5)
        .map(|_| {
            let (t, out) = run("--check");
            assert_eq!(
                out.status.code(),
                Some(0),
                "aide --check found changes: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            t
        })
        .collect();
    checks.sort();
    println!("aide --init (sha256, {workers} workers): {}", ms(init));
    println!("aide --check (sha256, {workers} workers): median {} min {}", ms(checks[2]), ms(checks[0]));
    Some(checks[2])
}

fn tamper_latency(root: &Path, tenants: usize, tampers: usize, settle_ms: u64) {
    let ready = root.join(format!("ready-{settle_ms}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardian"))
        .arg("watch")
        .arg(root.join("deploy"))
        .args(["--json", "--rescan-secs", "3600", "--settle-ms", &settle_ms.to_string()])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--trust")
        .arg(root.join("trust"))
        .arg("--state")
        .arg(root.join("state"))
        .arg("--audit")
        .arg(root.join("audit/audit.log"))
        .arg("--host-key")
        .arg(root.join("audit/host.key"))
        .env("NIGHTCORE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send((Instant::now(), v));
            }
        }
    });
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(600), "daemon not ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("watch start to ready ({tenants} tenants): {}", ms(start.elapsed()));
    let mut samples = Vec::new();
    let mut steps: Vec<[u64; 4]> = Vec::new();
    for i in 0..tampers {
        let tenant = format!("tenant-{:05}", (i * 7919) % tenants);
        let path: PathBuf = root.join("deploy").join(&tenant).join("module.wasm");
        while rx.try_recv().is_ok() {}
        let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(20)).unwrap();
        let t0 = Instant::now();
        file.write_all(&[0xff]).unwrap();
        drop(file);
        loop {
            let (at, event) = rx.recv_timeout(Duration::from_secs(60)).expect("no rollback.completed within 60 s");
            if event["kind"] == "rollback.completed" && event["data"]["tenant"] == tenant.as_str() {
                samples.push(at - t0);
                let t = &event["data"]["timings"];
                steps.push(["stage_us", "swap_us", "quarantine_us", "reverify_us"].map(|k| t[k].as_u64().unwrap_or(0)));
                break;
            }
        }
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    samples.sort();
    let median = |k: usize| {
        let mut v: Vec<u64> = steps.iter().map(|s| s[k]).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "  rollback steps (median µs): stage {} swap {} quarantine {} reverify {}",
        median(0),
        median(1),
        median(2),
        median(3)
    );
    println!(
        "tamper -> rollback.completed, settle {settle_ms} ms, {} tampers: p50 {} p99 {} max {}",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only check the code runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let tenants = if quick { 4 } else { env_usize("GUARDIAN_BENCH_TENANTS", 1000) };
    let kib = env_usize("GUARDIAN_BENCH_MODULE_KIB", 100);
    let tampers = if quick { 2 } else { env_usize("GUARDIAN_BENCH_TAMPERS", 50) };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let start = Instant::now();
    build_tree(root, tenants, kib);
    println!("tree: {tenants} bundles of {kib} KiB built in {}", ms(start.elapsed()));

    let mut g = Guardian::open(options(root), RepairMode::Repair, Box::new(|_| {})).unwrap();
    let start = Instant::now();
    let report = g.scan().unwrap();
    assert!(report.outcomes.iter().all(|o| o.action == guardian::Action::Trusted));
    println!("first run (read, verify, store, record {tenants} tenants): {}", ms(start.elapsed()));
    let mut scans: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let report = g.scan().unwrap();
            assert!(report.outcomes.is_empty());
            start.elapsed()
        })
        .collect();
    scans.sort();
    let mib = (tenants * kib) as f64 / 1024.0;
    println!(
        "full scan, clean ({tenants} tenants, {mib:.0} MiB): median {} min {} ({:.0} MiB/s)",
        ms(scans[2]),
        ms(scans[0]),
        mib / scans[2].as_secs_f64()
    );
    drop(g);
    let start = Instant::now();
    let g = Guardian::open(options(root), RepairMode::Repair, Box::new(|_| {})).unwrap();
    println!("open with state integrity check (re-hash and re-verify the store): {}", ms(start.elapsed()));
    drop(g);
    if let Some(aide) = aide(root) {
        println!("ratio guardian full scan / aide --check: {:.2}", scans[2].as_secs_f64() / aide.as_secs_f64());
    }
    tamper_latency(root, tenants, tampers, 200);
    tamper_latency(root, tenants, tampers, 0);
}
