//! Every `--help` of the runtime, guardian and xtask binaries, snapshotted:
//! help texts are documentation (exit codes live there), so changes are reviewed
//! like code. The signer's and `guardian audit`'s are in their own modules,
//! except the signer's wasmsign2 interop subcommands, which are here.

use crate::support::{cmd, run};

fn snapshot_help(binary: &str, subcommands: &[&str]) {
    for sub in std::iter::once("").chain(subcommands.iter().copied()) {
        snapshot_one(binary, sub);
    }
}

fn snapshot_one(binary: &str, sub: &str) {
    let mut c = cmd(binary);
    c.args(sub.split_whitespace()).arg("--help");
    let r = run(&mut c);
    assert_eq!(r.code, 0, "{binary} {sub} --help: {}", r.stderr);
    let name = format!("{binary}_{}help", if sub.is_empty() { String::new() } else { sub.replace(' ', "_") + "_" });
    insta::assert_snapshot!(name, r.stdout);
}

#[test]
fn runtime_help() {
    snapshot_help("runtime", &["exec", "verify-receipt", "replay"]);
}

#[test]
fn guardian_help() {
    snapshot_help("guardian", &["watch", "scan", "status", "report"]);
}

#[test]
fn xtask_help() {
    snapshot_help("xtask", &["build", "sign", "verify-reproducible", "keygen", "demo", "test", "bench-build"]);
}

#[test]
fn signer_wasmsig_help() {
    // `signer --help` and the other subcommands are snapshotted in signer_cli.rs.
    for sub in ["export-wasmsig", "export-wasmsig-key", "import-wasmsig-key"] {
        snapshot_one("signer", sub);
    }
}
