//! `cargo xtask test`: the README's test command. Installs what the tests need
//! on a fresh machine (the `minisign` and `wasmsign2` CLIs, Chromium, Go with golang.org/x/mod, the wasm32-wasip1 target), builds the
//! binaries the end-to-end tests drive, then runs every test of the workspace.
//! Nothing is skipped for want of a tool: a missing tool is installed or the
//! run fails saying why.

use anyhow::{Context, Result, bail};
use std::process::{Command, ExitCode};

use xtask::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments passed to `cargo test` (after `--workspace`), e.g. a test name filter.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cargo_test_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = xtask::workspace_root();
    let progress = Progress::for_stderr();
    ensure_minisign(progress)?;
    ensure_wasmsign2(progress)?;
    ensure_chromium(progress)?;
    ensure_go_tlog(progress)?;
    let toolchain = xtask::toolchain::Toolchain::probe(&xtask::toolchain::pinned_channel(&root)?)?;
    toolchain.ensure_target(xtask::build::WASM_TARGET, progress)?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The end-to-end tests drive the real binaries, which `cargo test` alone
    // does not build for another package's tests.
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--workspace", "--bins", "--locked"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        return Ok(ExitCode::from(2));
    }
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace", "--locked"])
        .args(&args.cargo_test_args)
        .status()
        .context("running cargo test")?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Installs the minisign CLI with apt when it is missing (the interop tests
/// check our signatures with it and its signatures with us).
fn ensure_minisign(progress: Progress) -> Result<()> {
    if Command::new("minisign").arg("-v").output().is_ok() {
        return Ok(());
    }
    progress.notice("the minisign CLI is missing; installing it with apt-get (Debian package minisign)");
    apt_install("minisign")
}

/// The `wasmsign2-cli` release the tool-conventions interop tests are pinned to
/// (also in `.ci/run`).
const WASMSIGN2_CLI_VERSION: &str = "0.2.8";

/// Installs the wasmsign2 CLI with `cargo install` when it is missing (the
/// tool-conventions interop tests check our signed modules with it and its with
/// us); it builds in a minute or two.
fn ensure_wasmsign2(progress: Progress) -> Result<()> {
    // The byte-identity test depends on the exact release: another one is replaced.
    let found = || {
        Command::new("wasmsign2").arg("--version").output().is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == format!("wasmsign2-cli {WASMSIGN2_CLI_VERSION}")
        })
    };
    if found() {
        return Ok(());
    }
    let argv = ["install", "--locked", "wasmsign2-cli", "--version", WASMSIGN2_CLI_VERSION];
    progress.notice(format!(
        "the wasmsign2 CLI {WASMSIGN2_CLI_VERSION} is missing; installing it with `cargo {}`",
        argv.join(" ")
    ));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(argv).status().context("running cargo install wasmsign2-cli")?;
    if !status.success() {
        bail!("`cargo {}` failed; install wasmsign2-cli by hand and run again", argv.join(" "));
    }
    if !found() {
        bail!("wasmsign2 was installed but is not on PATH; add cargo's bin directory (usually ~/.cargo/bin) to PATH");
    }
    Ok(())
}

/// Installs Chromium when it is missing: the dashboard test loads the HTML
/// report in headless Chromium and reads the timeline back from the DOM.
fn ensure_chromium(progress: Progress) -> Result<()> {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        return Ok(());
    }
    progress.notice("Chromium is missing; installing it with apt-get (Debian package chromium)");
    apt_install("chromium")
}

/// Where Debian's golang-golang-x-mod-dev puts golang.org/x/mod (a GOPATH).
const GO_X_MOD_GOPATH: &str = "/usr/share/gocode";

/// Installs Go and golang.org/x/mod when missing: the tiles interop test
/// audits our C2SP tlog-tiles with Go's `sumdb/tlog` and `sumdb/note`, code
/// we did not write.
fn ensure_go_tlog(progress: Progress) -> Result<()> {
    if Command::new("go").arg("version").output().is_err() {
        progress.notice("Go is missing; installing it with apt-get (Debian package golang-go)");
        apt_install("golang-go")?;
    }
    if !std::path::Path::new(GO_X_MOD_GOPATH).join("src/golang.org/x/mod/sumdb/tlog").is_dir() {
        progress
            .notice("golang.org/x/mod is missing; installing it with apt-get (Debian package golang-golang-x-mod-dev)");
        apt_install("golang-golang-x-mod-dev")?;
    }
    Ok(())
}

fn apt_install(package: &str) -> Result<()> {
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    for step in [&["apt-get", "update"][..], &["apt-get", "install", "-y", package][..]] {
        let argv: Vec<&str> = sudo.iter().chain(step.iter()).copied().collect();
        let status =
            Command::new(argv[0]).args(&argv[1..]).status().with_context(|| format!("running {}", argv.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed; install {package} by hand and run again", argv.join(" "));
        }
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}
