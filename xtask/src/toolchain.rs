//! The pinned guest toolchain. A module's bytes depend on the exact compiler
//! (its `producers` section embeds the rustc version, and codegen changes
//! between releases), so every build and rebuild runs the channel named in
//! `modules/rust-toolchain.toml`, checks that `rustc -V` agrees, and makes sure
//! the wasm32-wasip1 standard library is installed for it.

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::progress::Progress;

/// The compiler a build runs with, as the machine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The rustup channel from `rust-toolchain.toml`, e.g. `1.95.0`.
    pub channel: String,
    /// `rustc -V` output, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`; recorded in
    /// the provenance.
    pub rustc_version: String,
    /// `rustc --print sysroot`, exactly as rustc prints it; it is remapped out
    /// of the module and is where the wasm32-wasip1 standard library must be.
    pub sysroot: PathBuf,
    /// What `rustc -vV` and `cargo -V` say beyond the `rustc -V` line; recorded
    /// in the build provenance statement (see `crate::provenance`).
    pub identity: ToolchainIdentity,
}

/// The compiler's identity beyond `rustc -V`: the full commit, the host it
/// runs on, its LLVM and the cargo that drove it. Two builds with equal
/// `rustc -V` lines but different hosts can differ (proc macros and build
/// scripts run on the host), so a rebuild reports these too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolchainIdentity {
    /// `commit-hash:` of `rustc -vV`.
    pub rustc_commit_hash: String,
    /// `host:` of `rustc -vV`, e.g. `x86_64-unknown-linux-gnu`.
    pub rustc_host: String,
    /// `LLVM version:` of `rustc -vV`.
    pub llvm_version: String,
    /// `cargo -V`, e.g. `cargo 1.95.0 (f2d3ce0bd 2026-03-21)`.
    pub cargo_version: String,
}

/// Splits `rustc -vV` output into its first line (what `rustc -V` prints) and
/// the fields of [`ToolchainIdentity`] it holds; missing fields stay empty.
pub fn parse_rustc_verbose(text: &str) -> (String, ToolchainIdentity) {
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default().trim().to_owned();
    let mut identity = ToolchainIdentity::default();
    for line in lines {
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim().to_owned();
        match key.trim() {
            "commit-hash" => identity.rustc_commit_hash = value,
            "host" => identity.rustc_host = value,
            "LLVM version" => identity.llvm_version = value,
            _ => {}
        }
    }
    (version, identity)
}

/// Reads the channel pinned by `dir/rust-toolchain.toml`.
pub fn pinned_channel(dir: &Path) -> Result<String> {
    let path = dir.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_channel(&text).with_context(|| format!("in {}", path.display()))
}

/// Extracts `[toolchain] channel` from the text of a `rust-toolchain.toml`.
pub fn parse_channel(text: &str) -> Result<String> {
    let document: toml::Table = toml::from_str(text).context("not valid TOML")?;
    let channel = document
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .context("no [toolchain] channel = \"…\" entry")?;
    // A moving channel would let the same source give different bytes next
    // month, which defeats reproducible builds.
    if matches!(channel, "stable" | "beta" | "nightly") {
        bail!("channel {channel:?} is not pinned: name an exact release such as \"1.95.0\"");
    }
    Ok(channel.to_owned())
}

/// Whether a `rustc -V` line is the release that `channel` names. Channels that
/// are not plain version numbers (dated nightlies, custom toolchains) are
/// accepted as they are: rustup already picked exactly that toolchain.
pub fn rustc_version_matches(channel: &str, rustc_version: &str) -> bool {
    let is_release = channel.split('.').count() == 3
        && channel.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    !is_release
        || rustc_version.starts_with(&format!("rustc {channel} "))
        || rustc_version == format!("rustc {channel}")
}

impl Toolchain {
    /// Asks the machine for the compiler of `channel` and checks it is that release.
    pub fn probe(channel: &str) -> Result<Self> {
        let verbose = run_for_output(command_for(channel, "rustc").arg("-vV")).with_context(|| {
            format!("cannot run rustc of toolchain {channel} (install it with `rustup toolchain install {channel}`)")
        })?;
        let (version, mut identity) = parse_rustc_verbose(&verbose);
        if !rustc_version_matches(channel, &version) {
            bail!(
                "rustc reports {version:?} but the modules pin toolchain {channel}; run the build through rustup \
                 (so that RUSTUP_TOOLCHAIN selects the pinned compiler) or install {channel}"
            );
        }
        let sysroot = run_for_output(command_for(channel, "rustc").args(["--print", "sysroot"]))
            .context("cannot ask rustc for its sysroot")?;
        identity.cargo_version =
            run_for_output(command_for(channel, "cargo").arg("-V")).context("cannot ask cargo for its version")?;
        Ok(Self { channel: channel.to_owned(), rustc_version: version, sysroot: PathBuf::from(sysroot), identity })
    }

    /// A command for a rustup-managed tool (`cargo`, `rustc`) of this toolchain.
    pub fn command(&self, program: &str) -> Command {
        command_for(&self.channel, program)
    }

    /// Whether the standard library for `target` is installed in this toolchain.
    pub fn has_target(&self, target: &str) -> bool {
        self.sysroot.join("lib").join("rustlib").join(target).is_dir()
    }

    /// Installs the standard library for `target` with rustup when it is missing,
    /// as on a fresh machine; a no-op otherwise.
    pub fn ensure_target(&self, target: &str, progress: Progress) -> Result<()> {
        if self.has_target(target) {
            return Ok(());
        }
        progress.notice(format_args!(
            "the {target} target is not installed for toolchain {}; running `rustup target add {target} --toolchain {}`",
            self.channel, self.channel
        ));
        let mut rustup = Command::new("rustup");
        // Adding a target must never turn into installing a whole toolchain:
        // `probe` already found the pinned one.
        rustup.args(["target", "add", target, "--toolchain", &self.channel]).env("RUSTUP_AUTO_INSTALL", "0");
        run_showing_progress(&mut rustup, progress)
            .with_context(|| format!("cannot install the {target} target with rustup; install it by hand"))?;
        if !self.has_target(target) {
            bail!("rustup reported success but {} still has no {target} standard library", self.sysroot.display());
        }
        Ok(())
    }
}

fn command_for(channel: &str, program: &str) -> Command {
    let mut command = Command::new(program);
    // The rustup proxies honour RUSTUP_TOOLCHAIN over any rust-toolchain.toml,
    // so the pin holds even when the source sits in a directory without one.
    command.env("RUSTUP_TOOLCHAIN", channel);
    // A RUSTC override would swap the compiler behind the pin's back.
    command.env_remove("RUSTC").env_remove("RUSTC_WRAPPER").env_remove("RUSTC_WORKSPACE_WRAPPER");
    command
}

/// Runs a long command: on a terminal it draws its own progress on our stderr;
/// otherwise its output is kept and only shown if it fails.
pub(crate) fn run_showing_progress(command: &mut Command, progress: Progress) -> Result<()> {
    command.stdin(std::process::Stdio::null());
    let program = command.get_program().to_string_lossy().into_owned();
    if progress.shows_child_output() {
        let status = command.status().with_context(|| format!("cannot start {program}"))?;
        ensure!(status.success(), "{program} failed ({status})");
    } else {
        let output = command.output().with_context(|| format!("cannot start {program}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("{program} failed ({}):\n{}", output.status, stderr.trim_end());
        }
    }
    Ok(())
}

/// Runs a command and returns its trimmed stdout, or an error that carries its stderr.
pub(crate) fn run_for_output(command: &mut Command) -> Result<String> {
    let output = command.output().with_context(|| format!("cannot start {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8(output.stdout).context("output is not UTF-8")?;
    Ok(stdout.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_channel() {
        let text = "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip1\"]\n";
        assert_eq!(parse_channel(text).unwrap(), "1.95.0");
    }

    #[test]
    fn refuses_moving_or_missing_channels() {
        let moving = parse_channel("[toolchain]\nchannel = \"stable\"\n").unwrap_err();
        assert!(format!("{moving:#}").contains("is not pinned"), "{moving:#}");
        let missing = parse_channel("[toolchain]\nprofile = \"minimal\"\n").unwrap_err();
        assert!(format!("{missing:#}").contains("no [toolchain] channel"), "{missing:#}");
    }

    #[test]
    fn reads_the_identity_from_rustc_verbose_output() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                    commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\n\
                    host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        let (version, identity) = parse_rustc_verbose(text);
        assert_eq!(version, "rustc 1.95.0 (59807616e 2026-04-14)");
        assert_eq!(identity.rustc_commit_hash, "59807616e1fa2540724bfbac14d7976d7e4a3860");
        assert_eq!(identity.rustc_host, "x86_64-unknown-linux-gnu");
        assert_eq!(identity.llvm_version, "22.1.2");
        assert_eq!(identity.cargo_version, "", "cargo -V is asked separately");
        let (version, identity) = parse_rustc_verbose("rustc 0.0.1");
        assert_eq!((version.as_str(), identity), ("rustc 0.0.1", ToolchainIdentity::default()));
    }

    #[test]
    fn matches_rustc_version_lines() {
        assert!(rustc_version_matches("1.95.0", "rustc 1.95.0 (59807616e 2026-04-14)"));
        assert!(!rustc_version_matches("1.95.0", "rustc 1.95.1 (aaaaaaaaa 2026-05-01)"));
        assert!(!rustc_version_matches("1.95.0", "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)"));
        assert!(rustc_version_matches("nightly-2026-05-19", "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)"));
    }

    #[test]
    fn a_missing_target_is_detected_and_a_failed_install_explained() {
        let sysroot = tempfile::tempdir().unwrap();
        // A valid but absent release: rustup refuses at once, without a download.
        let toolchain = Toolchain {
            channel: "0.0.1".to_owned(),
            rustc_version: "rustc 0.0.1".to_owned(),
            sysroot: sysroot.path().to_path_buf(),
            identity: ToolchainIdentity::default(),
        };
        assert!(!toolchain.has_target("wasm32-wasip1"));
        let error = toolchain.ensure_target("wasm32-wasip1", Progress::Silent).unwrap_err();
        assert!(format!("{error:#}").contains("cannot install the wasm32-wasip1 target with rustup"), "{error:#}");

        std::fs::create_dir_all(sysroot.path().join("lib/rustlib/wasm32-wasip1")).unwrap();
        assert!(toolchain.has_target("wasm32-wasip1"));
        toolchain.ensure_target("wasm32-wasip1", Progress::Silent).unwrap();
    }

    /// The guest workspace is copied away from the root for rebuilds, so it
    /// carries its own pin; the two must never drift apart.
    #[test]
    fn modules_pin_the_same_toolchain_as_the_workspace() {
        let root = crate::workspace_root();
        assert_eq!(pinned_channel(&root.join("modules")).unwrap(), pinned_channel(&root).unwrap());
    }
}
