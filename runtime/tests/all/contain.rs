//! Hostile guests against the library: each must be stopped with exactly the
//! right classification, and the host must see nothing it did not grant.

use std::collections::BTreeMap;
use std::time::Duration;

use runtime::{GrantedPreopen, Outcome};
use signer::manifest::PreopenMode;

use crate::support::{exit_module, fixture, policy, run_module};

// WASI preview 1 errno values the probes report.
const ERRNO_NOENT: i32 = 44;
const ERRNO_PERM: i32 = 63;

#[test]
fn hello_exits_zero_with_its_output() {
    let report = run_module(&fixture("hello"), &policy(), &[]);
    assert_eq!(report.outcome, Outcome::Exited { code: 0 });
    assert_eq!(report.stdout, b"hello\n");
    assert!(report.stderr.is_empty());
    let consumed = report.fuel.consumed.unwrap();
    assert!(consumed > 0 && consumed < report.fuel.limit, "{consumed}");
}

#[test]
fn proc_exit_codes_pass_through() {
    for code in [0, 1, 3, 42, 124, 125] {
        let report = run_module(&exit_module(code), &policy(), &[]);
        assert_eq!(report.outcome, Outcome::Exited { code }, "code {code}");
    }
    // wasmtime-wasi refuses statuses outside 0..126 with a host error, which
    // is reported as a trap rather than passed through.
    for code in [126, 255, 256, -1] {
        match run_module(&exit_module(code), &policy(), &[]).outcome {
            Outcome::Trap { kind, message } => {
                assert_eq!(kind, "host_error");
                assert!(message.contains("invalid exit status"), "{message}");
            }
            other => panic!("code {code}: unexpected {other:?}"),
        }
    }
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let limited = runtime::EffectivePolicy { fuel: 5_000_000, timeout: Duration::from_secs(600), ..policy() };
    let report = run_module(&fixture("loop"), &limited, &[]);
    assert_eq!(report.outcome, Outcome::FuelExhausted);
    assert_eq!(report.fuel.consumed, Some(5_000_000));
}

#[test]
fn an_infinite_loop_with_ample_fuel_times_out() {
    let limited = runtime::EffectivePolicy { fuel: 1 << 50, timeout: Duration::from_millis(100), ..policy() };
    let report = run_module(&fixture("loop"), &limited, &[]);
    assert_eq!(report.outcome, Outcome::Timeout);
    // Fuel is not trustworthy after an epoch interrupt, so none is claimed.
    assert_eq!(report.fuel.consumed, None);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let report = run_module(&fixture("memory_bomb"), &policy(), &[]);
    // One initial page plus 1 MiB steps: the last step that fits leaves 241
    // pages, the next asks for 257.
    let page = 64 * 1024;
    assert_eq!(report.outcome, Outcome::MemoryLimit { desired: 257 * page, limit: 16 * 1024 * 1024 });
    assert_eq!(report.peak_memory_bytes, 241 * page);
}

#[test]
fn an_initial_memory_over_the_cap_is_stopped_at_instantiation() {
    let module = wat::parse_str(r#"(module (memory 512) (func (export "_start")))"#).unwrap();
    let small = runtime::EffectivePolicy { memory_mib: 1, ..policy() };
    let report = run_module(&module, &small, &[]);
    assert_eq!(report.outcome, Outcome::MemoryLimit { desired: 512 * 64 * 1024, limit: 1024 * 1024 });
}

#[test]
fn a_table_bomb_hits_the_table_cap() {
    let report = run_module(&fixture("table_bomb"), &policy(), &[]);
    assert_eq!(report.outcome, Outcome::TableLimit { desired: 101_000, limit: 100_000 });
}

#[test]
fn deep_recursion_overflows_the_wasm_stack() {
    let report = run_module(&fixture("recursion"), &policy(), &[]);
    assert_eq!(report.outcome, Outcome::StackOverflow);
}

#[test]
fn a_stdout_flood_is_cut_at_the_cap() {
    let limited = runtime::EffectivePolicy { max_output_bytes: 1000, ..policy() };
    let report = run_module(&fixture("flood"), &limited, &[]);
    assert_eq!(report.outcome, Outcome::OutputLimit { stream: "stdout", limit: 1000 });
    assert_eq!(report.stdout.len(), 1000);
    assert!(report.stdout_truncated);
    assert!(!report.stderr_truncated);
    assert!(report.stdout.starts_with(b"0123456789abcdef"));
}

#[test]
fn an_unreachable_trap_is_named() {
    let report = run_module(&fixture("unreachable"), &policy(), &[]);
    match report.outcome {
        Outcome::Trap { kind, message } => {
            assert_eq!(kind, "unreachable_code_reached");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[test]
fn the_guest_sees_only_the_granted_environment() {
    let with_env =
        runtime::EffectivePolicy { env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]), ..policy() };
    let report = run_module(&fixture("env"), &with_env, &[]);
    assert_eq!(report.outcome, Outcome::Exited { code: 0 });
    assert_eq!(String::from_utf8(report.stdout).unwrap(), "GREETING=hi\n");
    let report = run_module(&fixture("env"), &policy(), &[]);
    assert_eq!(report.stdout, b"");
}

/// A tenant tree: `root/tenant_a/data` (preopened), `root/tenant_b/data/b.txt`
/// (another tenant), `root/secret.txt` (the host), and symlinks inside the
/// preopen pointing out of it.
struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("tenant_a/data/sub")).unwrap();
        std::fs::create_dir_all(root.join("tenant_b/data")).unwrap();
        std::fs::write(root.join("tenant_a/data/ok.txt"), "mine\n").unwrap();
        std::fs::write(root.join("tenant_a/data/sub/inner.txt"), "inner\n").unwrap();
        std::fs::write(root.join("tenant_b/data/b.txt"), "tenant b\n").unwrap();
        std::fs::write(root.join("secret.txt"), "host secret\n").unwrap();
        std::os::unix::fs::symlink("../../secret.txt", root.join("tenant_a/data/relative_link")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), root.join("tenant_a/data/absolute_link")).unwrap();
        std::os::unix::fs::symlink("sub/inner.txt", root.join("tenant_a/data/inside_link")).unwrap();
        Self { _dir: dir, root }
    }

    fn data(&self) -> std::path::PathBuf {
        self.root.join("tenant_a/data")
    }

    fn probe(&self, mode: PreopenMode, op: &str, path: &str) -> runtime::RunReport {
        let granted = runtime::EffectivePolicy {
            preopens: vec![GrantedPreopen { guest: "/data".into(), host: self.data(), mode }],
            ..policy()
        };
        run_module(&fixture("fs_probe"), &granted, &[op, path])
    }
}

fn exited(report: &runtime::RunReport) -> i32 {
    match report.outcome {
        Outcome::Exited { code } => code,
        ref other => panic!("unexpected outcome {other:?}, stderr {:?}", String::from_utf8_lossy(&report.stderr)),
    }
}

#[test]
fn files_inside_the_preopen_are_readable() {
    let tree = Tree::new();
    let report = tree.probe(PreopenMode::ReadOnly, "r", "ok.txt");
    assert_eq!(exited(&report), 0);
    assert_eq!(report.stdout, b"mine\n");
    // A symlink that stays inside the preopen is followed.
    let report = tree.probe(PreopenMode::ReadOnly, "r", "inside_link");
    assert_eq!(exited(&report), 0);
    assert_eq!(report.stdout, b"inner\n");
}

#[test]
fn dot_dot_escapes_are_refused() {
    let tree = Tree::new();
    for path in ["../../secret.txt", "sub/../../../secret.txt", "../../tenant_b/data/b.txt", ".."] {
        let report = tree.probe(PreopenMode::ReadWrite, "r", path);
        assert_eq!(exited(&report), ERRNO_PERM, "{path}");
        assert!(report.stdout.is_empty(), "{path}");
    }
}

#[test]
fn absolute_paths_are_refused() {
    let tree = Tree::new();
    let secret = tree.root.join("secret.txt");
    for path in [secret.to_str().unwrap(), "/etc/passwd", "/data/ok.txt"] {
        let report = tree.probe(PreopenMode::ReadWrite, "r", path);
        assert_eq!(exited(&report), ERRNO_PERM, "{path}");
        assert!(report.stdout.is_empty(), "{path}");
    }
}

#[test]
fn symlinks_pointing_outside_the_preopen_are_not_followed() {
    let tree = Tree::new();
    for path in ["relative_link", "absolute_link"] {
        let report = tree.probe(PreopenMode::ReadWrite, "r", path);
        assert_eq!(exited(&report), ERRNO_PERM, "{path}");
        assert!(report.stdout.is_empty(), "{path}");
        // Writing through the link must not reach the target either.
        // The open itself is refused, as for reading: not "opened, then the write failed".
        let report = tree.probe(PreopenMode::ReadWrite, "w", path);
        assert_eq!(exited(&report), ERRNO_PERM, "{path}");
        assert_eq!(std::fs::read_to_string(tree.root.join("secret.txt")).unwrap(), "host secret\n");
    }
}

#[test]
fn read_only_preopens_refuse_writes() {
    let tree = Tree::new();
    let report = tree.probe(PreopenMode::ReadOnly, "w", "new.txt");
    assert_eq!(exited(&report), ERRNO_PERM);
    assert!(!tree.data().join("new.txt").exists());
    let report = tree.probe(PreopenMode::ReadOnly, "w", "ok.txt");
    assert_eq!(exited(&report), ERRNO_PERM);
    assert_eq!(std::fs::read_to_string(tree.data().join("ok.txt")).unwrap(), "mine\n");
}

#[test]
fn read_write_preopens_accept_writes() {
    let tree = Tree::new();
    let report = tree.probe(PreopenMode::ReadWrite, "w", "new.txt");
    assert_eq!(exited(&report), 0);
    assert_eq!(std::fs::read_to_string(tree.data().join("new.txt")).unwrap(), "owned\n");
}

#[test]
fn missing_files_report_enoent() {
    let tree = Tree::new();
    assert_eq!(exited(&tree.probe(PreopenMode::ReadOnly, "r", "absent.txt")), ERRNO_NOENT);
}

#[test]
fn without_a_preopen_there_is_no_file_system() {
    // fd 3 does not exist: the probe's path_open fails with EBADF (8).
    let report = run_module(&fixture("fs_probe"), &policy(), &["r", "ok.txt"]);
    assert_eq!(exited(&report), 8);
}

#[test]
fn a_guest_blocked_in_a_host_call_still_times_out() {
    let limited = runtime::EffectivePolicy { timeout: Duration::from_millis(200), ..policy() };
    let report = run_module(&fixture("sleep"), &limited, &[]);
    assert_eq!(report.outcome, Outcome::Timeout);
}

#[test]
fn fixed_determinism_makes_clocks_and_randomness_repeatable() {
    use runtime::exec::{Determinism, prepare, run};
    let engine = runtime::NightEngine::new(runtime::EngineOptions::default()).unwrap();
    let linker = runtime::wasi_linker(&engine).unwrap();
    let module = runtime::cache::compile(&engine, &fixture("clock_random")).unwrap();
    let pre = prepare(&linker, &module).unwrap();
    let fixed: Vec<_> = (0..2).map(|_| run(&engine, &pre, &policy(), &[], Determinism::Fixed).unwrap()).collect();
    assert_eq!(fixed[0].stdout.len(), 32);
    assert_eq!(fixed[0].stdout, fixed[1].stdout);
    assert_eq!(fixed[0].fuel.consumed, fixed[1].fuel.consumed);
    // The fixed wall clock reads 2000-01-01T00:00:00Z in nanoseconds.
    assert_eq!(fixed[0].stdout[..8], 946_684_800_000_000_000u64.to_le_bytes());
    let host: Vec<_> = (0..2).map(|_| run(&engine, &pre, &policy(), &[], Determinism::Host).unwrap()).collect();
    assert_ne!(host[0].stdout, host[1].stdout);
}
