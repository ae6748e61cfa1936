//! `cargo xtask demo`: the README's main-job command. On a fresh machine, with
//! no arguments, it walks the whole chain of custody on the example modules in a
//! throwaway directory (`target/demo/`) and narrates each step:
//!
//! 1. throwaway maintainer keys, a host key and a 2-of-2 trust store;
//! 2. reproducible builds, bundles in `dist/`, two signatures each, and a
//!    build provenance statement (in-toto / SLSA, DSSE-signed) beside each;
//! 3. a rebuild from source at another path, compared byte for byte, and the
//!    statement checked against the trust store and the rebuild's inputs;
//! 4. each module run by `runtime exec` under its signed policy, a tampered
//!    bundle refused, and hello run again as a single signed file;
//! 5. `guardian watch` over a deploy directory, a tampering write, and the
//!    guardian's rollback;
//! 6. `guardian audit verify` over everything that happened.

use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The demo node's checkpoint origin, to which its host key is bound in the trust store.
const ORIGIN: &str = "nightcore.demo/node-1";

use signer::keyfile::{load_or_create_host_key, write_key_pair};
use signer::minisign::{KeyProtection, SecretKey};
use signer::trust::write_trust_store;
use xtask::build::{BuildOptions, build_modules, discover_workspace_modules, select_modules};
use xtask::progress::Progress;
use xtask::provenance::StatementRequirement;
use xtask::sign::bundle_and_sign;
use xtask::verify::{VerifyOptions, verify_module};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Work directory, emptied first [default: target/demo of this checkout].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

fn say(step: &str, text: &str) {
    println!("\n== {step}\n{text}");
}

fn detail(text: impl std::fmt::Display) {
    println!("   {text}");
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let work = args.work_dir.unwrap_or_else(|| root.join("target/demo"));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("emptying {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let progress = Progress::for_stderr();

    say(
        "1. Keys and trust",
        "Two maintainers each get an Ed25519 key in minisign's format; the trust store requires both signatures (threshold 2). The host gets its own key, trusted only to sign audit checkpoints.",
    );
    let keys_dir = work.join("keys");
    let maintainers: Vec<SecretKey> = (0..2).map(|_| SecretKey::generate()).collect();
    for (name, key) in ["alice", "bob"].iter().zip(&maintainers) {
        // Throwaway keys: real ones are encrypted (`signer keygen` asks for a password).
        write_key_pair(&keys_dir, name, key, KeyProtection::DangerUnencrypted)?;
        detail(format!("{name}: key id {} ({}/{name}.key, mode 0600)", key.key_id(), keys_dir.display()));
    }
    let state = work.join("state");
    let host = load_or_create_host_key(&state.join("host.key"))?;
    detail(format!("host: key id {} (signs audit checkpoints only)", host.key_id()));
    let trust = work.join("trust");
    let (alice, bob, host_pub) = (maintainers[0].public_key(), maintainers[1].public_key(), host.public_key());
    write_trust_store(
        &trust,
        &[("alice", &alice), ("bob", &bob), ("host", &host_pub)],
        &format!("threshold = 2\n[log_keys]\n\"{}\" = [\"{ORIGIN}\"]\n", host.key_id()),
    )?;
    let tenants = work.join("tenants");
    std::fs::create_dir_all(tenants.join("files/input"))?;
    std::fs::create_dir_all(tenants.join("files/output"))?;
    std::fs::write(tenants.join("files/input/input.txt"), "the quick brown fox\njumps over the lazy dog\n")?;
    let config = work.join("nightcore.toml");
    std::fs::write(
        &config,
        format!(
            "trust_dir = \"trust\"\nstate_dir = \"state\"\norigin = \"{ORIGIN}\"\n\n\
         [tenants.hello]\nenv = {{ GREETING = \"Bonjour\" }}\n\n\
         [tenants.files]\nroot = \"tenants/files\"\ndirs = {{ \"/input\" = \"tenants/files/input\", \"/output\" = \"tenants/files/output\" }}\n"
        ),
    )?;
    // Everything the demo records goes through this node's configuration:
    // its host key and origin, the same for xtask, runtime and guardian.
    let node_log = audit::HostLog::from_config(&signer::config::NodeConfig::load(Some(&config))?);

    say(
        "2. Reproducible build and signing",
        "Each module is built for wasm32-wasip1 with a pinned toolchain, remapped paths and a fixed profile, bundled into dist/<module>/<version>/ with its capabilities in the manifest, and signed by both maintainers. Beside each bundle goes its build provenance: an in-toto statement with a SLSA provenance predicate (source tree, commit, toolchain, flags, Cargo.lock), in a DSSE envelope both maintainers sign too.",
    );
    let dist = work.join("dist");
    let mut options = BuildOptions::for_workspace(&root, progress);
    options.target_dir = work.join("build");
    options.out_dir = work.join("built");
    let built = build_modules(&options, &[])?;
    let mut bundles = Vec::new();
    for module in &built {
        let signed = bundle_and_sign(module, &dist, 30, Some(&maintainers[0]))?;
        let signed = bundle_and_sign(module, &dist, 30, Some(&maintainers[1])).map(|mut b| {
            b.created = signed.created;
            b
        })?;
        xtask::events::module_signed(&node_log, &signed)?;
        detail(format!(
            "{} v{}: {} bytes, sha256 {}…, signed by alice and bob",
            module.name,
            module.version,
            module.size,
            &module.sha256[..16]
        ));
        if let Some(statement) = &signed.statement {
            detail(format!("  provenance: {} (signed by alice and bob)", statement.display()));
        }
        bundles.push(signed);
    }

    say(
        "3. Rebuild from source",
        "hello is rebuilt from a copy of its source at a different path, with its own target directory, and compared byte for byte with the signed module. Its provenance statement is checked against the trust store, and every input it records against the rebuild's.",
    );
    let (toolchain, modules) = discover_workspace_modules(&root.join("modules"), progress)?;
    let hello = select_modules(modules, &["hello".to_string()])?;
    let verify_options = VerifyOptions {
        modules_dir: root.join("modules"),
        dist_dir: dist.clone(),
        scratch_parent: None,
        cargo_home: None,
        trust: Some(signer::trust::TrustStore::load(&trust)?),
        audit_log: Some(node_log.clone()),
        statement: StatementRequirement::Required,
        progress,
    };
    for module in &hello {
        let v = verify_module(&verify_options, &toolchain, module)?;
        ensure!(
            v.report.identical,
            "hello did not rebuild identically:\n{}",
            xtask::rebuild::render_human("hello", &v.report)
        );
        detail(format!("hello v{}: identical (sha256 {}…)", v.version, &v.report.actual.sha256[..16]));
        let signers: Vec<String> = v.statement.signers.iter().map(ToString::to_string).collect();
        detail(format!("provenance: verified, signed by {}", signers.join(", ")));
        if v.statement.differences.is_empty() {
            detail("every recorded input (source tree, commit, toolchain, flags, Cargo.lock) matches the rebuild");
        } else {
            for d in &v.statement.differences {
                detail(format!("recorded input differs: {}: recorded {} now {}", d.field, d.recorded, d.rebuilt));
            }
        }
    }

    say(
        "4. Verified execution",
        "runtime exec reads each bundle once, verifies both signatures against the trust store, checks the imports against the signed policy, and runs exactly those bytes under fuel, time and memory limits.",
    );
    let bins = build_binaries(&root)?;
    let deploy = work.join("deploy");
    for b in &bundles {
        copy_dir(&b.bundle_dir, &deploy.join(&b.module))?;
    }
    let runs: [(&str, &[&str]); 3] = [("hello", &["Night Core"]), ("files", &["input.txt"]), ("sieve", &["2000000"])];
    for (tenant, guest_args) in runs {
        let out = Command::new(&bins.runtime)
            .current_dir(&work)
            .args(["exec", "--json", "--config"])
            .arg(&config)
            .arg(deploy.join(tenant))
            .arg("--")
            .args(guest_args)
            .output()
            .context("running runtime exec")?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!("runtime exec {tenant} printed no JSON: {}", String::from_utf8_lossy(&out.stderr))
        })?;
        let field = |pointer: &str| report.pointer(pointer).cloned().unwrap_or(serde_json::Value::Null);
        let stdout = report.get("stdout").and_then(|s| s.as_str()).unwrap_or("").trim().replace('\n', "; ");
        detail(format!(
            "{tenant}: exit {}, fuel {} of {}, {} µs, stdout {stdout:?}",
            out.status.code().unwrap_or(-1),
            field("/fuel/consumed"),
            field("/fuel/limit"),
            field("/wall_time_us"),
        ));
    }
    if let Ok(counts) = std::fs::read_to_string(tenants.join("files/output/input.txt.counts")) {
        detail(format!("files wrote /output/input.txt.counts: {}", counts.trim().replace('\n', "; ")));
    }
    let tampered = work.join("tampered-hello");
    copy_dir(&deploy.join("hello"), &tampered)?;
    flip_last_byte(&tampered.join("module.wasm"))?;
    let out = Command::new(&bins.runtime)
        .current_dir(&work)
        .args(["exec", "--config"])
        .arg(&config)
        .arg(&tampered)
        .output()?;
    ensure!(out.status.code() == Some(125), "a tampered bundle was not refused (exit {:?})", out.status.code());
    detail(format!("a copy of hello with one flipped byte: refused, exit 125: {}", first_line(&out.stderr)));
    // The same bundle as one file (manifest and signatures in a custom section),
    // as registries and CDNs ship it: verified and run the same way.
    let single = work.join("hello.signed.wasm");
    let bundle = signer::bundle::BundleBytes::read(&deploy.join("hello"), &signer::bundle::ReadLimits::default())?;
    std::fs::write(&single, signer::embed::embed(&bundle)?)?;
    let out = Command::new(&bins.runtime)
        .current_dir(&work)
        .args(["exec", "--config"])
        .arg(&config)
        .arg(&single)
        .arg("--")
        .arg("single file")
        .output()?;
    ensure!(out.status.success(), "the single-file hello did not run: {}", first_line(&out.stderr));
    detail(format!(
        "hello as one file ({}): exit 0, stdout {:?}",
        single.display(),
        String::from_utf8_lossy(&out.stdout).trim()
    ));

    say(
        "5. Drift detection and rollback",
        "guardian watch verifies the deploy directory, then watches it. A byte of hello's module.wasm is overwritten in place; the guardian quarantines the bad file, restores the last verified bytes and records it.",
    );
    let ready = work.join("guardian.ready");
    let mut guardian = Command::new(&bins.guardian)
        .current_dir(&work)
        .args(["watch", "--json", "--config"])
        .arg(&config)
        .arg("--ready-file")
        .arg(&ready)
        .arg(&deploy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting guardian watch")?;
    let stdout = guardian.stdout.take().context("guardian stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_for(|| ready.exists(), Duration::from_secs(30)).context("guardian did not become ready")?;
    detail("guardian ready: every deployed bundle verified");
    let target = deploy.join("hello/module.wasm");
    let good = std::fs::read(&target)?;
    let started = Instant::now();
    flip_last_byte(&target)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rolled_back = false;
    while Instant::now() < deadline && !rolled_back {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let kind = event.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            if kind == "drift.detected" || kind == "rollback.completed" {
                detail(format!("guardian: {kind} {}", event.get("data").map(|d| d.to_string()).unwrap_or_default()));
            }
            rolled_back = kind == "rollback.completed";
        }
    }
    let elapsed = started.elapsed();
    terminate(&mut guardian)?;
    ensure!(rolled_back, "the guardian did not report a rollback within 30 s");
    ensure!(std::fs::read(&target)? == good, "hello's module.wasm was not restored");
    detail(format!(
        "hello's module.wasm is byte-identical to the verified version again ({} ms after the write)",
        elapsed.as_millis()
    ));

    say(
        "6. Audit",
        "Every step above left an entry in the hash-chained audit log, with a checkpoint signed by the host key. Anyone holding the trust store can verify it.",
    );
    let out =
        Command::new(&bins.guardian).current_dir(&work).args(["audit", "verify", "--config"]).arg(&config).output()?;
    print!("   {}", String::from_utf8_lossy(&out.stdout));
    ensure!(out.status.success(), "the audit log does not verify: {}", String::from_utf8_lossy(&out.stderr));
    let out =
        Command::new(&bins.guardian).current_dir(&work).args(["audit", "show", "--config"]).arg(&config).output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        detail(truncate(line, 110));
    }
    println!("\nDone. Everything is in {}.", work.display());
    Ok(ExitCode::SUCCESS)
}

struct Binaries {
    runtime: PathBuf,
    guardian: PathBuf,
}

fn build_binaries(root: &Path) -> Result<Binaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        // The whole workspace, as `cargo xtask test` builds it: the same feature
        // unification, so wasmtime is compiled once for both.
        .args(["build", "--quiet", "--workspace", "--bins"])
        .status()
        .context("building runtime and guardian")?;
    ensure!(status.success(), "building runtime and guardian failed");
    let dir = root.join("target/debug");
    Ok(Binaries { runtime: dir.join("runtime"), guardian: dir.join("guardian") })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

fn flip_last_byte(path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut bytes = std::fs::read(path)?;
    let Some(last) = bytes.last_mut() else { bail!("{} is empty", path.display()) };
    *last ^= 0x5a;
    // Overwrite in place, as an attacker with write access would.
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    Ok(())
}

fn wait_for(mut done: impl FnMut() -> bool, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("timed out after {} s", timeout.as_secs())
}

fn terminate(child: &mut std::process::Child) -> Result<()> {
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
    ensure!(status.success(), "could not signal the guardian");
    let status = child.wait()?;
    detail(format!("guardian stopped cleanly on SIGTERM (exit {})", status.code().unwrap_or(-1)));
    Ok(())
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).lines().next().unwrap_or("").to_string()
}

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max { line.to_string() } else { line.chars().take(max).collect::<String>() + "…" }
}
