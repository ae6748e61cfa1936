//! End-to-end reproducibility of the real tenant modules: two builds of the
//! same source in two different directories (different path lengths, target
//! directories and `CARGO_HOME`s) must give identical bytes and identical
//! provenance, and `cargo xtask verify-reproducible` must say so, say "no"
//! with the right explanation after a source change, and fail cleanly when the
//! bundle is missing. These run real wasm32-wasip1 builds, a few seconds each.
#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a failure is reported")]

use signer::manifest::{MANIFEST_SCHEMA, Manifest};
use std::path::{Path, PathBuf};
use std::process::Command;
use xtask::build::{BuildOptions, BuiltModule, PathRoot, WASM_TARGET, build_modules, remap_flags};
use xtask::progress::Progress;
use xtask::rebuild::{Artifact, compare};
use xtask::source_tree::copy_workspace;
use xtask::toolchain::{Toolchain, pinned_channel};
use xtask::verify::{MANIFEST_FILE, MODULE_FILE, bundle_dir};

const EPOCH: u64 = 1_700_000_000;

fn copy_of_modules(to: &Path) -> PathBuf {
    copy_workspace(&xtask::workspace_root().join("modules"), to).unwrap();
    to.to_path_buf()
}

fn build_one(modules_dir: &Path, scratch: &Path, cargo_home: Option<PathBuf>, module: &str) -> (BuiltModule, Vec<u8>) {
    let mut built = build(modules_dir, scratch, cargo_home, &[module.to_owned()]);
    assert_eq!(built.len(), 1);
    built.remove(0)
}

/// Builds `modules` (all when empty) and returns each with its bytes.
fn build(
    modules_dir: &Path,
    scratch: &Path,
    cargo_home: Option<PathBuf>,
    modules: &[String],
) -> Vec<(BuiltModule, Vec<u8>)> {
    let options = BuildOptions {
        modules_dir: modules_dir.to_path_buf(),
        target_dir: scratch.join("target-dir"),
        out_dir: scratch.join("out"),
        source_date_epoch: Some(EPOCH),
        commit: Some(String::new()),
        cargo_home,
        progress: Progress::Silent,
    };
    let built = build_modules(&options, modules).unwrap();
    built
        .into_iter()
        .map(|module| {
            let bytes = std::fs::read(&module.wasm_path).unwrap();
            (module, bytes)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn the_same_source_in_two_directories_builds_to_identical_bytes() {
    let short = tempfile::tempdir().unwrap();
    let long = tempfile::tempdir().unwrap();
    let first = copy_of_modules(&short.path().join("m"));
    let second = copy_of_modules(&long.path().join("a-much-longer-directory-name/at/several/levels/modules"));
    // A second, empty CARGO_HOME: the modules need nothing from the registry.
    let other_cargo_home = long.path().join("another-cargo-home");
    std::fs::create_dir_all(&other_cargo_home).unwrap();

    let builds_a = build(&first, &short.path().join("a"), None, &[]);
    let builds_b = build(&second, &long.path().join("b/deeper"), Some(other_cargo_home), &[]);
    let names: Vec<&str> = builds_a.iter().map(|(m, _)| m.name.as_str()).collect();
    assert_eq!(names, ["files", "hello", "sieve"]);

    for ((built_a, bytes_a), (built_b, bytes_b)) in builds_a.iter().zip(&builds_b) {
        let name = &built_a.name;
        assert_eq!(built_a.sha256, built_b.sha256, "the two builds of {name} differ");
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(built_a.provenance, built_b.provenance, "the provenance of {name} depends on paths");
        assert_eq!(built_a.provenance.source_date_epoch, EPOCH);
        assert!(built_a.provenance.toolchain.starts_with("rustc 1.95.0"), "{}", built_a.provenance.toolchain);
        assert_eq!(built_a.version, 1);

        let report = compare(
            Artifact { bytes: bytes_a, provenance: &built_a.provenance },
            Artifact { bytes: bytes_b, provenance: &built_b.provenance },
        );
        assert!(report.identical);
        assert!(report.embedded_paths.is_empty(), "{name}: {:?}", report.embedded_paths);
        for dir in [short.path(), long.path()] {
            let text = dir.to_str().unwrap();
            assert!(!contains(bytes_a, text), "{name} embeds {text}");
        }
    }
    let hello = &builds_a[1].0;
    assert_eq!(hello.capabilities.env, ["GREETING"]);
    // Modules share the workspace files but not their crates.
    assert_ne!(hello.provenance.source_tree_sha256, builds_a[2].0.provenance.source_tree_sha256);
}

fn write_bundle(dist: &Path, built: &BuiltModule, bytes: &[u8]) {
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA.to_owned(),
        name: built.name.clone(),
        version: built.version,
        version_label: built.version_label.clone(),
        module: built.digest(),
        expires: "2099-01-01T00:00:00Z".to_owned(),
        provenance: built.provenance.clone(),
        capabilities: built.capabilities.clone(),
    };
    let dir = bundle_dir(dist, &built.name, built.version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_canonical_bytes().unwrap()).unwrap();
    std::fs::write(dir.join(MODULE_FILE), bytes).unwrap();
}

fn verify_reproducible(modules_dir: &Path, dist: &Path, module: &str) -> (i32, serde_json::Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["verify-reproducible", module, "--json", "--modules-dir"])
        .arg(modules_dir)
        .arg("--dist")
        .arg(dist)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn verify_reproducible_says_yes_then_no_after_a_source_change_and_fails_without_a_bundle() {
    let scratch = tempfile::tempdir().unwrap();
    let modules = copy_of_modules(&scratch.path().join("modules"));
    let dist = scratch.path().join("dist");
    let (built, bytes) = build_one(&modules, &scratch.path().join("build"), None, "hello");
    write_bundle(&dist, &built, &bytes);

    let (code, json, stderr) = verify_reproducible(&modules, &dist, "hello");
    assert_eq!(code, 0, "{json:#}\n{stderr}");
    assert_eq!(json["all_identical"], true);
    assert_eq!(json["modules"][0]["status"], "identical");
    assert_eq!(json["modules"][0]["report"]["expected"]["sha256"], built.sha256.as_str());
    assert_eq!(json["modules"][0]["report"]["provenance"], serde_json::json!([]));

    // A changed string constant: the data section changes, and the provenance
    // explains it with a different source tree hash.
    let main = modules.join("hello/src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        source.replace("const DEFAULT_NAME: &str = \"world\";", "const DEFAULT_NAME: &str = \"planet\";"),
    )
    .unwrap();
    let (code, json, stderr) = verify_reproducible(&modules, &dist, "hello");
    assert_eq!(code, 1, "{json:#}\n{stderr}");
    let report = &json["modules"][0]["report"];
    assert_eq!(json["modules"][0]["status"], "different");
    let differing: Vec<&str> = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["equal"] == false)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(differing.contains(&"data"), "{differing:?}");
    let fields: Vec<&str> =
        report["provenance"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["source_tree_sha256"]);
    assert!(report["first_difference_offset"].is_u64());

    let (code, json, stderr) = verify_reproducible(&modules, &dist, "files");
    assert_eq!(code, 2, "{json:#}\n{stderr}");
    assert_eq!(json["modules"][0]["status"], "error");
    let error = json["modules"][0]["error"].as_str().unwrap();
    assert!(error.contains("no bundle for files version 1"), "{error}");
}

/// The example modules reach rustc only through paths relative to their
/// workspace, so they would reproduce even without `--remap-path-prefix`; the
/// remapping matters for sources cargo names by absolute path (registry
/// dependencies under `CARGO_HOME`). This compiles such a source with exactly
/// the flags `remap_flags` produces, `CARGO_HOME` nested inside the checkout
/// so that the ordering of the flags matters too.
#[test]
fn remap_flags_rewrite_absolute_source_paths_in_the_module() {
    let scratch = tempfile::tempdir().unwrap();
    let checkout = scratch.path().join("checkout");
    let cargo_home = checkout.join("cargo-home");
    let source = cargo_home.join("registry/src/dep/main.rs");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(
        &source,
        "fn main() {\n    if std::env::args().count() > 100 {\n        panic!(\"too many\");\n    }\n}\n",
    )
    .unwrap();
    let flags = remap_flags(&[(PathRoot::Modules, checkout.clone()), (PathRoot::CargoHome, cargo_home)]).unwrap();

    let modules_dir = xtask::workspace_root().join("modules");
    let toolchain = Toolchain::probe(&pinned_channel(&modules_dir).unwrap()).unwrap();
    let output = scratch.path().join("probe.wasm");
    let status = toolchain
        .command("rustc")
        .args(["--edition=2024", "--target", WASM_TARGET, "-Cpanic=abort", "-Copt-level=s", "-Cstrip=symbols", "-o"])
        .arg(&output)
        .arg(&source)
        .args(&flags.passed)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&output).unwrap();
    assert!(contains(&bytes, "/nightcore/cargo-home/registry/src/dep/main.rs"), "the panic location was not remapped");
    assert!(!contains(&bytes, scratch.path().to_str().unwrap()), "the module embeds the checkout path");
}
