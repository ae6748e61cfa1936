//! Reproducible wasm32-wasip1 builds of the tenant modules in `modules/`.
//!
//! The same source must give the same bytes on any machine and in any
//! directory, because `cargo xtask verify-reproducible` rebuilds a signed
//! module and compares hashes. What that takes was measured (see
//! `shared/TOOLCHAIN.md`): the pinned toolchain, `--locked`, the fixed release
//! profile [`RELEASE_PROFILE`], and `--remap-path-prefix` for the *exact* paths
//! of the source, `CARGO_HOME`, the toolchain sysroot and the target directory.
//! Everything else that could change the bytes through the environment
//! (RUSTFLAGS, profile overrides, wrappers) is removed from cargo's environment.
//!
//! A build also records how it was made ([`Provenance`]) with machine paths
//! replaced by placeholders, so two honest builds of the same source on two
//! machines record the same provenance too.

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use sha2::{Digest, Sha256};
use signer::manifest::{Capabilities, ModuleDigest, Provenance, format_rfc3339, validate_name};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::progress::Progress;
use crate::source_tree;
use crate::toolchain::{self, Toolchain, ToolchainIdentity};

/// The only target tenant modules are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// The release profile of every module build, as `(key, value)` in Cargo's
/// spelling. `modules/Cargo.toml` states the same profile (a test keeps them
/// equal) so a plain `cargo build --release` there agrees; the build also sets
/// it through `CARGO_PROFILE_RELEASE_*`, which outranks any config file.
pub const RELEASE_PROFILE: &[(&str, &str)] = &[
    ("opt-level", "s"),
    ("debug", "false"),
    ("debug-assertions", "false"),
    ("overflow-checks", "false"),
    ("lto", "true"),
    ("panic", "abort"),
    ("incremental", "false"),
    ("codegen-units", "1"),
    ("strip", "true"),
];

/// Default `CARGO_TARGET_DIR` of module builds, under the workspace `target/`.
pub const BUILD_DIR: &str = "target/nightcore-build";
/// Where built modules are copied, as `<module>.wasm`.
pub const OUTPUT_DIR: &str = "target/nightcore";

/// A machine directory whose path could end up in the module, and the fixed
/// path it is remapped to. Listed in the order their flags are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathRoot {
    /// The modules workspace (the checkout, or the rebuild's temporary copy).
    Modules,
    /// `CARGO_HOME`, where registry and git dependencies are unpacked.
    CargoHome,
    /// The toolchain sysroot (its standard library is already remapped by the
    /// Rust project, but a local toolchain may not be).
    Sysroot,
    /// `CARGO_TARGET_DIR`, home of build-script output (`OUT_DIR`).
    TargetDir,
}

impl PathRoot {
    /// The placeholder written in the recorded build flags.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::Modules => "<modules>",
            Self::CargoHome => "<cargo-home>",
            Self::Sysroot => "<sysroot>",
            Self::TargetDir => "<target-dir>",
        }
    }

    /// The path that replaces the machine path inside the module.
    pub fn remapped(self) -> &'static str {
        match self {
            Self::Modules => "/nightcore/modules",
            Self::CargoHome => "/nightcore/cargo-home",
            Self::Sysroot => "/nightcore/sysroot",
            Self::TargetDir => "/nightcore/target",
        }
    }
}

/// The `--remap-path-prefix` flags of one build: what rustc is given and what
/// the provenance records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemapFlags {
    /// Flags with the real paths. Sorted so the longest source path comes last,
    /// because rustc applies the last matching remapping and a nested
    /// directory (a `CARGO_HOME` inside the checkout) must win over its parent.
    pub passed: Vec<String>,
    /// The same flags with placeholders, one per root, in [`PathRoot`] order.
    pub recorded: Vec<String>,
}

/// Builds the remapping flags for the given roots. Each root is remapped both
/// as given and, when different, as its canonical path, since cargo and rustc
/// may see either.
pub fn remap_flags(roots: &[(PathRoot, PathBuf)]) -> Result<RemapFlags> {
    let mut variants: Vec<(String, PathRoot)> = Vec::new();
    for (root, path) in roots {
        let mut paths = vec![path.clone()];
        if let Ok(canonical) = path.canonicalize()
            && canonical != *path
        {
            paths.push(canonical);
        }
        for path in paths {
            let Some(text) = path.to_str() else {
                bail!("{} is not a UTF-8 path and cannot be remapped", path.display());
            };
            ensure!(!text.contains('\x1f'), "{text:?} contains a unit separator and cannot be passed to rustc");
            if !variants.iter().any(|(existing, _)| existing == text) {
                variants.push((text.to_owned(), *root));
            }
        }
    }
    variants.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
    let passed =
        variants.iter().map(|(path, root)| format!("--remap-path-prefix={path}={}", root.remapped())).collect();
    let recorded_roots: BTreeSet<PathRoot> = roots.iter().map(|(root, _)| *root).collect();
    let recorded = recorded_roots
        .into_iter()
        .map(|root| format!("--remap-path-prefix={}={}", root.placeholder(), root.remapped()))
        .collect();
    Ok(RemapFlags { passed, recorded })
}

/// Every flag that influences the bytes, path-independent, as recorded in
/// [`Provenance::build_flags`].
pub fn recorded_build_flags(remap: &RemapFlags) -> Vec<String> {
    let mut flags = vec![format!("--target={WASM_TARGET}"), "--release".to_owned(), "--locked".to_owned()];
    flags.extend(RELEASE_PROFILE.iter().map(|(key, value)| format!("profile.release.{key}={value}")));
    flags.push("CARGO_INCREMENTAL=0".to_owned());
    flags.extend(remap.recorded.iter().map(|flag| format!("RUSTFLAGS={flag}")));
    flags
}

/// Whether an inherited environment variable could change what cargo builds,
/// and so must not reach the module build.
pub fn is_byte_affecting_env(name: &str) -> bool {
    const PREFIXES: &[&str] = &["CARGO_PROFILE_", "CARGO_BUILD_", "CARGO_TARGET_", "CARGO_UNSTABLE_", "CARGO_ENCODED_"];
    const NAMES: &[&str] = &[
        "CARGO",
        "CARGO_INCREMENTAL",
        "RUSTC",
        "RUSTC_BOOTSTRAP",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTDOC",
        "RUSTDOCFLAGS",
        "RUSTFLAGS",
    ];
    // Parallelism is a preference of the machine, not an input: with one
    // codegen unit per crate it cannot change the bytes.
    const KEPT: &[&str] = &["CARGO_BUILD_JOBS"];
    !KEPT.contains(&name) && (PREFIXES.iter().any(|prefix| name.starts_with(prefix)) || NAMES.contains(&name))
}

/// What a module crate asks for in `[package.metadata.nightcore]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleMetadata {
    /// The monotonically increasing release number signed into the manifest.
    pub version: u64,
    /// The requested capabilities, validated.
    pub capabilities: Capabilities,
}

/// Reads `[package.metadata.nightcore]` from a package's metadata as cargo
/// reports it: `Ok(None)` when the package has none (it is then not a module),
/// an error when it has one that is malformed.
pub fn parse_module_metadata(package_metadata: &serde_json::Value) -> Result<Option<ModuleMetadata>> {
    let Some(nightcore) = package_metadata.get("nightcore") else {
        return Ok(None);
    };
    let Some(table) = nightcore.as_object() else {
        bail!("[package.metadata.nightcore] must be a table");
    };
    let mut fields = table.clone();
    let version = match fields.remove("version") {
        Some(value) => value.as_u64().filter(|v| *v >= 1).with_context(|| {
            format!("[package.metadata.nightcore] version must be a whole number of at least 1, not {value}")
        })?,
        None => bail!("[package.metadata.nightcore] has no version (the release number signed into the manifest)"),
    };
    let capabilities: Capabilities = serde_json::from_value(serde_json::Value::Object(fields))
        .context("[package.metadata.nightcore] is not in the format of signer::manifest::Capabilities")?;
    capabilities.validate().context("[package.metadata.nightcore] requests invalid capabilities")?;
    Ok(Some(ModuleMetadata { version, capabilities }))
}

/// One tenant module crate of the modules workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleCrate {
    /// Package name, which is also the tenant name in manifests and `dist/`.
    pub name: String,
    /// The package version, used as the manifest's human-readable label.
    pub version_label: String,
    /// The name of the crate's binary target, i.e. of the `.wasm` cargo writes.
    pub bin_name: String,
    /// Directories, relative to the workspace root, whose files make up the
    /// module's source: its own crate and the workspace crates it depends on.
    pub source_dirs: Vec<PathBuf>,
    /// What `[package.metadata.nightcore]` says.
    pub metadata: ModuleMetadata,
}

/// Lists the modules of the workspace at `modules_dir` using its pinned
/// toolchain, installing the wasm32-wasip1 target when it is missing.
pub fn discover_workspace_modules(modules_dir: &Path, progress: Progress) -> Result<(Toolchain, Vec<ModuleCrate>)> {
    let toolchain = Toolchain::probe(&toolchain::pinned_channel(modules_dir)?)?;
    toolchain.ensure_target(WASM_TARGET, progress)?;
    let modules = discover_modules(modules_dir, &toolchain)?;
    Ok((toolchain, modules))
}

/// Lists the modules of the workspace at `modules_dir`: the members that have
/// `[package.metadata.nightcore]`, sorted by name.
pub fn discover_modules(modules_dir: &Path, toolchain: &Toolchain) -> Result<Vec<ModuleCrate>> {
    let mut command = cargo_metadata::MetadataCommand::new();
    command
        .cargo_path("cargo")
        .manifest_path(modules_dir.join("Cargo.toml"))
        .current_dir(modules_dir)
        .env("RUSTUP_TOOLCHAIN", &toolchain.channel)
        // Without resolving dependencies cargo need not ask rustc anything,
        // which keeps discovery at a few tens of milliseconds; path
        // dependencies are followed from the manifests instead.
        .no_deps();
    let metadata =
        command.exec().with_context(|| format!("cannot read the cargo metadata of {}", modules_dir.display()))?;
    modules_from_metadata(&metadata)
}

fn modules_from_metadata(metadata: &cargo_metadata::Metadata) -> Result<Vec<ModuleCrate>> {
    let root = metadata.workspace_root.as_std_path();
    let mut modules = Vec::new();
    for package in metadata.workspace_packages() {
        let name = package.name.to_string();
        let module_metadata =
            parse_module_metadata(&package.metadata).with_context(|| format!("in module crate {name}"))?;
        let Some(module_metadata) = module_metadata else { continue };
        validate_name(&name).with_context(|| format!("module crate {name} cannot be a tenant name"))?;
        let bins: Vec<&str> = package.targets.iter().filter(|t| t.is_bin()).map(|t| t.name.as_str()).collect();
        let [bin_name] = bins.as_slice() else {
            bail!("module crate {name} must have exactly one binary target, it has {}", bins.len());
        };
        let mut source_dirs = Vec::new();
        for dir in local_source_dirs(metadata, package)? {
            let relative = dir.strip_prefix(root).with_context(|| {
                format!(
                    "module {name} uses {}, outside the modules workspace, which a rebuild would not see",
                    dir.display()
                )
            })?;
            source_dirs.push(relative.to_path_buf());
        }
        source_dirs.sort();
        source_dirs.dedup();
        modules.push(ModuleCrate {
            name,
            version_label: package.version.to_string(),
            bin_name: (*bin_name).to_owned(),
            source_dirs,
            metadata: module_metadata,
        });
    }
    modules.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(modules)
}

/// The directory of `package` and of every package it reaches through normal
/// or build path dependencies. A path dependency must be a workspace member,
/// so that its own dependencies are known too.
fn local_source_dirs(metadata: &cargo_metadata::Metadata, package: &cargo_metadata::Package) -> Result<Vec<PathBuf>> {
    let members = metadata.workspace_packages();
    let package_dir = |p: &cargo_metadata::Package| p.manifest_path.parent().map(|d| d.as_std_path().to_path_buf());
    let mut dirs = Vec::new();
    let mut pending = vec![package];
    while let Some(current) = pending.pop() {
        let Some(dir) = package_dir(current) else { continue };
        if dirs.contains(&dir) {
            continue;
        }
        dirs.push(dir);
        for dependency in &current.dependencies {
            if dependency.kind == cargo_metadata::DependencyKind::Development {
                continue;
            }
            let Some(path) = &dependency.path else { continue };
            let path = path.as_std_path();
            match members.iter().find(|m| package_dir(m).as_deref() == Some(path)) {
                Some(member) => pending.push(member),
                None => bail!(
                    "{} depends on {} at {}, which is not a member of the modules workspace; add it to `members`",
                    current.name,
                    dependency.name,
                    path.display()
                ),
            }
        }
    }
    Ok(dirs)
}

/// Picks the modules named in `names` (all of them when empty), failing on an
/// unknown name with the list of known ones.
pub fn select_modules(modules: Vec<ModuleCrate>, names: &[String]) -> Result<Vec<ModuleCrate>> {
    if names.is_empty() {
        ensure!(!modules.is_empty(), "the modules workspace has no crate with [package.metadata.nightcore]");
        return Ok(modules);
    }
    let known: Vec<String> = modules.iter().map(|m| m.name.clone()).collect();
    let mut by_name: BTreeMap<String, ModuleCrate> = modules.into_iter().map(|m| (m.name.clone(), m)).collect();
    let mut selected = Vec::new();
    for name in names {
        if selected.iter().any(|m: &ModuleCrate| &m.name == name) {
            continue;
        }
        match by_name.remove(name) {
            Some(module) => selected.push(module),
            None => bail!("no module named {name:?}; the modules are: {}", known.join(", ")),
        }
    }
    Ok(selected)
}

/// Where and how to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Root of the modules workspace (its `Cargo.toml` has `[workspace]`).
    pub modules_dir: PathBuf,
    /// `CARGO_TARGET_DIR` of the build.
    pub target_dir: PathBuf,
    /// Where `<module>.wasm` is copied.
    pub out_dir: PathBuf,
    /// Build timestamp; `None` takes the time of the last git commit of
    /// `modules_dir`, or 0 when it is not in a git checkout.
    pub source_date_epoch: Option<u64>,
    /// Commit recorded in the provenance; `None` takes `git rev-parse HEAD` of
    /// `modules_dir`, or the empty string outside git.
    pub commit: Option<String>,
    /// `CARGO_HOME` of the build; `None` keeps the caller's (`$CARGO_HOME`, else
    /// `~/.cargo`).
    pub cargo_home: Option<PathBuf>,
    pub progress: Progress,
}

impl BuildOptions {
    /// The standard layout of the workspace at `workspace_root`: source in
    /// `modules/`, build in [`BUILD_DIR`], output in [`OUTPUT_DIR`].
    pub fn for_workspace(workspace_root: &Path, progress: Progress) -> Self {
        Self {
            modules_dir: workspace_root.join("modules"),
            target_dir: workspace_root.join(BUILD_DIR),
            out_dir: workspace_root.join(OUTPUT_DIR),
            source_date_epoch: None,
            commit: None,
            cargo_home: None,
            progress,
        }
    }
}

/// A module built by [`build_modules`], with everything a manifest needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltModule {
    /// Tenant name (the package name).
    pub name: String,
    /// Release number from `[package.metadata.nightcore] version`.
    pub version: u64,
    /// The package version, the manifest's human-readable label.
    pub version_label: String,
    /// `<out_dir>/<name>.wasm`.
    pub wasm_path: PathBuf,
    /// Lower-case hex SHA-256 of the module bytes.
    pub sha256: String,
    /// Size of the module in bytes.
    pub size: u64,
    /// How it was built, path-independent.
    pub provenance: Provenance,
    /// What the module asks for, from its `Cargo.toml`.
    pub capabilities: Capabilities,
    /// The compiler's identity beyond [`Provenance::toolchain`], for the build
    /// provenance statement.
    #[serde(skip)]
    pub toolchain_identity: ToolchainIdentity,
    /// When and as which invocation the build ran, for the statement.
    #[serde(skip)]
    pub run: BuildRun,
}

/// When, and as which invocation, one call of [`build_discovered`] ran: the
/// `runDetails.metadata` of the build provenance statements of its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRun {
    /// `urn:uuid:` and a random (version 4) UUID, one per build invocation.
    pub invocation_id: String,
    /// When cargo was started, RFC 3339 UTC in whole seconds.
    pub started_on: String,
    /// When cargo finished.
    pub finished_on: String,
}

/// A fresh `urn:uuid:` invocation id (RFC 9562 version 4).
pub fn new_invocation_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("urn:uuid:{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

impl BuiltModule {
    /// The digest in the form a manifest stores it.
    pub fn digest(&self) -> ModuleDigest {
        ModuleDigest { sha256: self.sha256.clone(), size: self.size }
    }
}

/// Builds the modules named in `names` (all when empty) reproducibly and
/// copies them to `options.out_dir`.
pub fn build_modules(options: &BuildOptions, names: &[String]) -> Result<Vec<BuiltModule>> {
    let modules_dir = absolute(&options.modules_dir)?;
    ensure!(
        modules_dir.join("Cargo.toml").is_file(),
        "{} is not a modules workspace (it has no Cargo.toml)",
        modules_dir.display()
    );
    let (toolchain, modules) = discover_workspace_modules(&modules_dir, options.progress)?;
    build_discovered(options, &toolchain, select_modules(modules, names)?)
}

/// Builds modules already discovered with [`discover_workspace_modules`] (in
/// `options.modules_dir` or an exact copy of it), sparing a second probe of the
/// toolchain and the workspace.
pub fn build_discovered(
    options: &BuildOptions,
    toolchain: &Toolchain,
    modules: Vec<ModuleCrate>,
) -> Result<Vec<BuiltModule>> {
    let modules_dir = absolute(&options.modules_dir)?;
    let channel = toolchain::pinned_channel(&modules_dir)?;
    ensure!(
        channel == toolchain.channel,
        "{} pins toolchain {channel}, but the build was handed {}",
        modules_dir.display(),
        toolchain.channel
    );

    let target_dir = absolute(&options.target_dir)?;
    let out_dir = absolute(&options.out_dir)?;
    for dir in [&target_dir, &out_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let cargo_home = match &options.cargo_home {
        Some(dir) => absolute(dir)?,
        None => default_cargo_home()?,
    };
    let source_date_epoch = match options.source_date_epoch {
        Some(epoch) => epoch,
        None => git_commit_time(&modules_dir).unwrap_or(0),
    };
    let commit = match &options.commit {
        Some(commit) => commit.clone(),
        None => git_head(&modules_dir).unwrap_or_default(),
    };
    let remap = remap_flags(&[
        (PathRoot::Modules, modules_dir.clone()),
        (PathRoot::CargoHome, cargo_home.clone()),
        (PathRoot::Sysroot, toolchain.sysroot.clone()),
        (PathRoot::TargetDir, target_dir.clone()),
    ])?;

    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    options.progress.step(format_args!(
        "building {} for {WASM_TARGET} with {}",
        names.join(", "),
        toolchain.rustc_version
    ));
    let mut cargo = toolchain.command("cargo");
    cargo.current_dir(&modules_dir).args(["build", "--release", "--locked", "--target", WASM_TARGET]);
    for name in &names {
        cargo.args(["--package", name]);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_none_or(is_byte_affecting_env) {
            cargo.env_remove(&name);
        }
    }
    for (key, value) in RELEASE_PROFILE {
        let variable = format!("CARGO_PROFILE_RELEASE_{}", key.replace('-', "_").to_uppercase());
        cargo.env(variable, value);
    }
    let invocation_id = new_invocation_id();
    let started_on = format_rfc3339(time::OffsetDateTime::now_utc());
    cargo
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_HOME", &cargo_home)
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_ENCODED_RUSTFLAGS", remap.passed.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string());
    toolchain::run_showing_progress(&mut cargo, options.progress).context("cannot build the modules")?;
    let run = BuildRun { invocation_id, started_on, finished_on: format_rfc3339(time::OffsetDateTime::now_utc()) };

    let cargo_lock_sha256 = hex::encode(Sha256::digest(
        std::fs::read(modules_dir.join("Cargo.lock")).context("cannot read the modules Cargo.lock")?,
    ));
    let build_flags = recorded_build_flags(&remap);
    let mut built = Vec::new();
    for module in modules {
        let produced = target_dir.join(WASM_TARGET).join("release").join(format!("{}.wasm", module.bin_name));
        let bytes =
            std::fs::read(&produced).with_context(|| format!("cargo did not produce {}", produced.display()))?;
        let wasm_path = out_dir.join(format!("{}.wasm", module.name));
        // A temporary name unique to this process and call, then fsync and rename:
        // concurrent builds of the same module must not trip over one shared
        // temporary file, and a reader never sees half a module.
        signer::fsutil::atomic_write(&wasm_path, &bytes, signer::fsutil::FileMode::Public)
            .with_context(|| format!("cannot write {}", wasm_path.display()))?;
        let provenance = Provenance {
            toolchain: toolchain.rustc_version.clone(),
            cargo_lock_sha256: cargo_lock_sha256.clone(),
            source_tree_sha256: source_tree::source_tree_sha256(&modules_dir, &module.source_dirs)
                .with_context(|| format!("cannot hash the source of {}", module.name))?,
            build_flags: build_flags.clone(),
            source_date_epoch,
            commit: commit.clone(),
        };
        options.progress.step(format_args!("built {} ({} bytes)", wasm_path.display(), bytes.len()));
        built.push(BuiltModule {
            name: module.name,
            version: module.metadata.version,
            version_label: module.version_label,
            wasm_path,
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            provenance,
            capabilities: module.metadata.capabilities,
            toolchain_identity: toolchain.identity.clone(),
            run: run.clone(),
        });
    }
    Ok(built)
}

/// The `CARGO_HOME` cargo would use: `$CARGO_HOME`, else `$HOME/.cargo`.
pub fn default_cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|v| !v.is_empty()) {
        return absolute(Path::new(&home));
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|v| !v.is_empty())
        .context("neither CARGO_HOME nor HOME is set, so CARGO_HOME cannot be found")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// The commit time of HEAD of the git checkout holding `dir`, if there is one.
pub fn git_commit_time(dir: &Path) -> Option<u64> {
    git_output(dir, &["log", "-1", "--format=%ct"])?.parse().ok()
}

/// `git rev-parse HEAD` of the checkout holding `dir`, if there is one.
pub fn git_head(dir: &Path) -> Option<String> {
    git_output(dir, &["rev-parse", "HEAD"]).filter(|head| !head.is_empty())
}

fn git_output(dir: &Path, args: &[&str]) -> Option<String> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args).stdin(Stdio::null()).stderr(Stdio::null());
    toolchain::run_for_output(&mut command).ok()
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use signer::manifest::{Preopen, PreopenMode};

    #[test]
    fn parses_version_and_capabilities_from_metadata() {
        let metadata = json!({"nightcore": {
            "version": 3, "fuel": 1000, "memory_mib": 16, "timeout_ms": 100, "max_output_bytes": 64,
            "env": ["GREETING"], "preopen": [{"guest": "/input", "mode": "ro"}], "network": []
        }});
        let parsed = parse_module_metadata(&metadata).unwrap().unwrap();
        assert_eq!(parsed.version, 3);
        assert_eq!(parsed.capabilities.fuel, 1000);
        assert_eq!(parsed.capabilities.env, ["GREETING"]);
        assert_eq!(parsed.capabilities.preopen, [Preopen { guest: "/input".into(), mode: PreopenMode::ReadOnly }]);
    }

    #[test]
    fn a_package_without_nightcore_metadata_is_not_a_module() {
        assert_eq!(parse_module_metadata(&serde_json::Value::Null).unwrap(), None);
        assert_eq!(parse_module_metadata(&json!({"other-tool": {}})).unwrap(), None);
    }

    #[test]
    fn refuses_malformed_metadata_with_the_reason() {
        let cases = [
            (json!({"nightcore": {"fuel": 10}}), "has no version"),
            (json!({"nightcore": {"version": 0}}), "at least 1"),
            (json!({"nightcore": {"version": "1"}}), "whole number"),
            (json!({"nightcore": {"version": 1, "fuell": 10}}), "not in the format"),
            (json!({"nightcore": {"version": 1, "fuel": 0}}), "invalid capabilities"),
            (
                json!({"nightcore": {"version": 1, "preopen": [{"guest": "/a/../b", "mode": "rw"}]}}),
                "invalid capabilities",
            ),
            (json!({"nightcore": 5}), "must be a table"),
        ];
        for (metadata, reason) in cases {
            let error = parse_module_metadata(&metadata).unwrap_err();
            assert!(format!("{error:#}").contains(reason), "{metadata}: {error:#}");
        }
    }

    #[test]
    fn remapping_puts_the_most_specific_path_last_and_records_placeholders() {
        let flags = remap_flags(&[
            (PathRoot::Modules, PathBuf::from("/nonexistent/checkout")),
            (PathRoot::CargoHome, PathBuf::from("/nonexistent/checkout/cargo-home")),
            (PathRoot::TargetDir, PathBuf::from("/t")),
        ])
        .unwrap();
        assert_eq!(
            flags.passed,
            [
                "--remap-path-prefix=/t=/nightcore/target",
                "--remap-path-prefix=/nonexistent/checkout=/nightcore/modules",
                "--remap-path-prefix=/nonexistent/checkout/cargo-home=/nightcore/cargo-home",
            ]
        );
        assert_eq!(
            flags.recorded,
            [
                "--remap-path-prefix=<modules>=/nightcore/modules",
                "--remap-path-prefix=<cargo-home>=/nightcore/cargo-home",
                "--remap-path-prefix=<target-dir>=/nightcore/target",
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn remapping_covers_the_canonical_path_of_a_symlinked_root() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let flags = remap_flags(&[(PathRoot::Modules, link.clone())]).unwrap();
        assert_eq!(flags.passed.len(), 2, "{:?}", flags.passed);
        assert!(flags.passed.iter().any(|f| f.contains(real.to_str().unwrap())));
        assert_eq!(flags.recorded, ["--remap-path-prefix=<modules>=/nightcore/modules"]);
    }

    #[test]
    fn invocation_ids_are_random_version_4_uuids() {
        let (first, second) = (new_invocation_id(), new_invocation_id());
        assert_ne!(first, second);
        let uuid = first.strip_prefix("urn:uuid:").unwrap();
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
    }

    #[test]
    fn recorded_flags_hold_no_machine_paths() {
        let remap = remap_flags(&[(PathRoot::Modules, PathBuf::from("/home/someone/modules"))]).unwrap();
        let flags = recorded_build_flags(&remap);
        assert!(flags.iter().all(|f| !f.contains("/home/")), "{flags:?}");
        assert!(flags.contains(&"profile.release.codegen-units=1".to_owned()));
        assert!(flags.contains(&"--target=wasm32-wasip1".to_owned()));
    }

    #[test]
    fn removes_environment_that_changes_bytes_and_keeps_the_rest() {
        for name in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WRAPPER",
            "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS",
            "RUSTC",
            "CARGO",
        ] {
            assert!(is_byte_affecting_env(name), "{name}");
        }
        for name in
            ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "CARGO_NET_OFFLINE", "CARGO_HTTP_TIMEOUT", "CARGO_BUILD_JOBS"]
        {
            assert!(!is_byte_affecting_env(name), "{name}");
        }
    }

    /// A plain `cargo build --release` in `modules/` and `cargo xtask build`
    /// must agree on the profile, so the two lists may never drift apart.
    #[test]
    fn modules_manifest_states_the_enforced_profile() {
        let path = crate::workspace_root().join("modules/Cargo.toml");
        let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let profile = manifest["profile"]["release"].as_table().unwrap();
        let stated: BTreeMap<String, String> = profile
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())))
            .collect();
        let enforced: BTreeMap<String, String> =
            RELEASE_PROFILE.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(stated, enforced);
    }

    #[test]
    fn selects_modules_by_name_and_names_the_known_ones_on_a_typo() {
        let module = |name: &str| ModuleCrate {
            name: name.to_owned(),
            version_label: "0.1.0".to_owned(),
            bin_name: name.to_owned(),
            source_dirs: vec![PathBuf::from(name)],
            metadata: ModuleMetadata { version: 1, capabilities: Capabilities::default() },
        };
        let all = vec![module("files"), module("hello")];
        assert_eq!(select_modules(all.clone(), &[]).unwrap().len(), 2);
        let picked = select_modules(all.clone(), &["hello".to_owned(), "hello".to_owned()]).unwrap();
        assert_eq!(picked.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["hello"]);
        let error = select_modules(all, &["helo".to_owned()]).unwrap_err();
        assert_eq!(format!("{error:#}"), "no module named \"helo\"; the modules are: files, hello");
    }

    fn write(root: &Path, relative: &str, content: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn pinned_toolchain() -> Toolchain {
        let modules_dir = crate::workspace_root().join("modules");
        Toolchain::probe(&toolchain::pinned_channel(&modules_dir).unwrap()).unwrap()
    }

    /// A module's source includes the workspace crates it uses, but not the
    /// ones it only tests with or does not use at all.
    #[test]
    fn a_module_source_includes_its_path_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "Cargo.toml",
            "[workspace]\nresolver = \"3\"\nmembers = [\"app\", \"common\", \"testkit\", \"other\"]\n",
        );
        write(
            root,
            "app/Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.2.0\"\nedition = \"2024\"\n\
             [dependencies]\ncommon = { path = \"../common\" }\n[dev-dependencies]\ntestkit = { path = \"../testkit\" }\n\
             [package.metadata.nightcore]\nversion = 7\n",
        );
        write(root, "app/src/main.rs", "fn main() {}\n");
        for lib in ["common", "testkit", "other"] {
            write(
                root,
                &format!("{lib}/Cargo.toml"),
                &format!("[package]\nname = \"{lib}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n"),
            );
            write(root, &format!("{lib}/src/lib.rs"), "\n");
        }
        let modules = discover_modules(root, &pinned_toolchain()).unwrap();
        assert_eq!(modules.len(), 1, "only crates with [package.metadata.nightcore] are modules");
        assert_eq!(modules[0].name, "app");
        assert_eq!(modules[0].version_label, "0.2.0");
        assert_eq!(modules[0].metadata.version, 7);
        assert_eq!(modules[0].source_dirs, [PathBuf::from("app"), PathBuf::from("common")]);
    }

    #[test]
    fn a_path_dependency_outside_the_workspace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("modules");
        write(&root, "Cargo.toml", "[workspace]\nresolver = \"3\"\nmembers = [\"app\"]\n");
        write(
            &root,
            "app/Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             [dependencies]\noutside = { path = \"../../outside\" }\n[package.metadata.nightcore]\nversion = 1\n",
        );
        write(&root, "app/src/main.rs", "fn main() {}\n");
        write(
            dir.path(),
            "outside/Cargo.toml",
            "[package]\nname = \"outside\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        );
        write(dir.path(), "outside/src/lib.rs", "\n");
        let error = discover_modules(&root, &pinned_toolchain()).unwrap_err();
        assert!(format!("{error:#}").contains("not a member of the modules workspace"), "{error:#}");
    }

    /// Every real module declares valid capabilities and a version.
    #[test]
    fn the_example_modules_are_discovered_with_their_capabilities() {
        let modules_dir = crate::workspace_root().join("modules");
        let modules = discover_modules(&modules_dir, &pinned_toolchain()).unwrap();
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["files", "hello", "sieve"]);
        let hello = &modules[1];
        assert_eq!(hello.source_dirs, [PathBuf::from("hello")]);
        assert_eq!(hello.metadata.capabilities.env, ["GREETING"]);
        let files = &modules[0];
        assert_eq!(files.metadata.capabilities.preopens_by_guest().len(), 2);
    }
}
