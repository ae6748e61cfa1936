//! Shared fixtures for the end-to-end tests: keys, a trust store and signed
//! bundles made with the signer library, and a real `guardian` process whose
//! JSON events and log lines are collected by threads and waited for with
//! deadlines (never fixed sleeps).

// Not every test file uses every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use signer::bundle::{write_signature, write_unsigned};
use signer::manifest::{Capabilities, MANIFEST_SCHEMA, Manifest, ModuleDigest, Provenance};
use signer::minisign::{PublicKey, SecretKey};
use signer::trust::write_trust_store;

pub const FUTURE: &str = "2999-01-01T00:00:00Z";
/// Generous: the machine may be busy compiling. Nothing asserts on time.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn guardian_bin() -> &'static str {
    env!("CARGO_BIN_EXE_guardian")
}

/// A module whose custom section makes every (tenant, version, size) unique.
pub fn module(tenant: &str, version: u64, padding: usize) -> Vec<u8> {
    let mut payload = format!("{tenant} v{version}").into_bytes();
    payload.resize(payload.len() + padding, b'.');
    let mut section = vec![1u8, b'n'];
    section.extend_from_slice(&payload);
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    leb128(&mut bytes, section.len() as u64);
    bytes.extend_from_slice(&section);
    bytes
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A node: three maintainer keys, a trust store, a deploy directory, a state
/// directory and an audit log, all in one temporary directory.
pub struct Node {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub keys: Vec<SecretKey>,
}

impl Node {
    pub fn new(trust_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let keys = (0..3).map(|_| SecretKey::generate()).collect();
        let node = Self { _dir: dir, root, keys };
        node.set_trust(trust_toml);
        fs::create_dir_all(node.deploy()).expect("deploy dir");
        node
    }

    pub fn set_trust(&self, trust_toml: &str) {
        let pubs: Vec<PublicKey> = self.keys.iter().map(SecretKey::public_key).collect();
        let names: Vec<String> = (0..pubs.len()).map(|i| format!("k{i}")).collect();
        let named: Vec<(&str, &PublicKey)> = names.iter().map(String::as_str).zip(pubs.iter()).collect();
        write_trust_store(&self.trust(), &named, trust_toml).expect("trust store");
    }

    pub fn trust(&self) -> PathBuf {
        self.root.join("trust")
    }
    pub fn deploy(&self) -> PathBuf {
        self.root.join("deploy")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit/audit.log")
    }
    pub fn host_key(&self) -> PathBuf {
        self.root.join("audit/host.key")
    }
    pub fn ready_file(&self) -> PathBuf {
        self.root.join("ready.json")
    }
    pub fn tenant(&self, name: &str) -> PathBuf {
        self.deploy().join(name)
    }

    /// Writes a bundle at `out` (which must not exist), signed by `signers`.
    pub fn bundle_at(&self, out: &Path, tenant: &str, version: u64, signers: &[usize]) {
        self.bundle_with(out, tenant, version, signers, 0);
    }

    pub fn bundle_with(&self, out: &Path, tenant: &str, version: u64, signers: &[usize], padding: usize) {
        let module = module(tenant, version, padding);
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA.into(),
            name: tenant.into(),
            version,
            version_label: format!("{version}.0.0"),
            module: ModuleDigest::of(&module),
            expires: FUTURE.into(),
            provenance: Provenance::default(),
            capabilities: Capabilities::default(),
        };
        write_unsigned(out, &module, &manifest).expect("bundle");
        let bytes = fs::read(out.join("manifest.json")).expect("manifest");
        for &k in signers {
            write_signature(out, &self.keys[k].sign(&bytes, "file:manifest.json").expect("sign")).expect("signature");
        }
    }

    pub fn deploy_bundle(&self, tenant: &str, version: u64, signers: &[usize]) -> PathBuf {
        let path = self.tenant(tenant);
        self.bundle_at(&path, tenant, version, signers);
        path
    }

    /// Writes the single-file form of a bundle (`signer embed`) as the only
    /// file of the tenant directory `DEPLOY/<tenant>/module.wasm`.
    pub fn deploy_single_file(&self, tenant: &str, version: u64, signers: &[usize]) -> PathBuf {
        let staged = self.root.join(format!("single-{tenant}-{version}"));
        let _ = fs::remove_dir_all(&staged);
        self.bundle_at(&staged, tenant, version, signers);
        let bytes = signer::bundle::BundleBytes::read(&staged, &signer::bundle::ReadLimits::default()).expect("read");
        let dir = self.tenant(tenant);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("tenant dir");
        fs::write(dir.join("module.wasm"), signer::embed::embed(&bytes).expect("embed")).expect("write");
        dir
    }

    /// Deploys a new bundle the recommended way: written complete beside the
    /// tenant (under a dot name, which nothing runs), then renamed into place.
    pub fn swap_in(&self, tenant: &str, version: u64, signers: &[usize]) {
        let staged = self.deploy().join(format!(".stage-{tenant}-{version}"));
        let _ = fs::remove_dir_all(&staged);
        self.bundle_at(&staged, tenant, version, signers);
        let old = self.deploy().join(format!(".old-{tenant}-{version}"));
        fs::rename(self.tenant(tenant), &old).expect("move old aside");
        fs::rename(&staged, self.tenant(tenant)).expect("move new in");
        fs::remove_dir_all(&old).expect("remove old");
    }

    /// A `guardian` command with this node's paths.
    pub fn guardian(&self, subcommand: &str) -> Command {
        let mut c = Command::new(guardian_bin());
        c.current_dir(&self.root)
            .env_remove("NIGHTCORE_TEST_ROLLBACK_PAUSE_MS")
            .env("NIGHTCORE_LOG", std::env::var("GUARDIAN_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .arg(subcommand);
        if subcommand != "status" {
            c.arg(self.deploy());
        }
        c.arg("--trust").arg(self.trust());
        c.arg("--state").arg(self.state()).arg("--audit").arg(self.audit_log()).arg("--host-key").arg(self.host_key());
        c
    }

    /// Runs `guardian scan [--repair] --json` and returns (exit code, JSON, stderr).
    pub fn scan(&self, repair: bool) -> (i32, Value, String) {
        let mut c = self.guardian("scan");
        c.arg("--json");
        if repair {
            c.arg("--repair");
        }
        let out = c.output().expect("run guardian scan");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    /// `guardian status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.guardian("status").arg("--json").output().expect("run guardian status");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Every file below a tenant path, with bytes and mode; links as `->target`.
    pub fn files(&self, tenant: &str) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        collect(&self.tenant(tenant), "", &mut out);
        out
    }

    /// Every path, byte and mode under the deploy directory, every tenant's
    /// included: what a scan that must not write is compared against.
    pub fn deploy_tree(&self) -> BTreeMap<String, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        collect(&self.deploy(), "", &mut out);
        out
    }

    /// Verifies the live audit log with the host key.
    pub fn audit_report(&self) -> audit::VerifyReport {
        let key = signer::keyfile::load_or_create_host_key(&self.host_key()).expect("host key");
        audit::verify_log(
            &self.audit_log(),
            &audit::default_checkpoint_path(&self.audit_log()),
            &key.signing_key().verifying_key(),
        )
        .expect("read audit log")
    }

    pub fn audit_kinds(&self) -> Vec<String> {
        fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn collect(path: &Path, rel: &str, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        out.insert(rel.to_string(), (format!("->{target}").into_bytes(), 0));
    } else if meta.is_dir() {
        out.insert(format!("{rel}/"), (Vec::new(), mode));
        for entry in fs::read_dir(path).expect("read_dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            collect(&entry.path(), &child, out);
        }
    } else {
        out.insert(rel.to_string(), (fs::read(path).unwrap_or_default(), mode));
    }
}

/// A running `guardian watch`.
pub struct Daemon {
    child: Option<Child>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `guardian watch --json` and waits until its ready file appears.
    pub fn start(node: &Node, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let _ = fs::remove_file(node.ready_file());
        let mut c = node.guardian("watch");
        c.arg("--json").arg("--ready-file").arg(node.ready_file()).args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut daemon = Daemon::spawn(c);
        daemon.wait_until("the ready file", || node.ready_file().exists());
        daemon
    }

    /// Spawns without waiting for readiness.
    pub fn spawn(mut c: Command) -> Daemon {
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn guardian watch");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (e, s) = (Arc::clone(&events), Arc::clone(&stderr));
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        e.lock().expect("lock").push(v);
                    }
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut s = s.lock().expect("lock");
                    s.push_str(&line);
                    s.push('\n');
                }
            }),
        ];
        Daemon { child: Some(child), events, stderr, readers }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Polls `ready` until it holds, failing with the daemon's output at the deadline.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.join_readers();
                panic!("guardian exited ({status}) while waiting for {what}\nstderr:\n{}", self.stderr());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}\nevents: {:#?}\nstderr:\n{}",
                self.events(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the `n`-th (0-based) event since `from` that matches, and returns it.
    pub fn wait_event(&mut self, from: usize, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let events = Arc::clone(&self.events);
        let find = || events.lock().expect("lock").iter().skip(from).find(|e| matches(e)).cloned();
        self.wait_until(what, || find().is_some());
        find().unwrap_or(Value::Null)
    }

    /// Waits for an event of `kind` about `tenant` after index `from`, and
    /// returns its `data`.
    pub fn wait_kind(&mut self, from: usize, kind: &str, tenant: &str) -> Value {
        self.wait_event(from, &format!("{kind} for {tenant}"), |e| e["kind"] == kind && e["data"]["tenant"] == tenant)["data"].clone()
    }

    pub fn wait_stderr(&mut self, needle: &str) {
        let stderr = Arc::clone(&self.stderr);
        self.wait_until(&format!("{needle:?} on stderr"), || stderr.lock().expect("lock").contains(needle));
    }

    pub fn count(&self) -> usize {
        self.events.lock().expect("lock").len()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.child.take().expect("child").wait().expect("wait");
        self.join_readers();
        (status, self.stderr())
    }

    /// kill -9: the process gets no chance to clean up.
    pub fn kill_hard(mut self) -> String {
        let mut child = self.child.take().expect("child");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        self.join_readers();
        self.stderr()
    }

    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let status = self.child.take().expect("child").wait().expect("wait");
        self.join_readers();
        (status, self.stderr())
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
